/**
 * npm run bench — non-stream chat throughput through web + worker with full accounting (auth, RPM,
 * hold, BullMQ hop, lease, upstream call, settlement, relay), against the shipped mock upstream.
 *
 *   BENCH_SECONDS=10 BENCH_CONCURRENCY=64 BENCH_WORKERS=1 BENCH_WEBS=1 npm run bench
 *
 * Uses its own database (eastx_bench, dropped first) and Redis prefix. Prints req/s, latency
 * percentiles, the processes' memory, and checks that every success was billed exactly once.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { createConnection } from 'mysql2/promise';
import { Agent, request } from 'undici';
import { migrateToLatest } from '../src/db/migrate.js';
import { startMockUpstream } from '../src/mock/upstream.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 64);
const WORKERS = Number(process.env.BENCH_WORKERS ?? 1);
const WEBS = Number(process.env.BENCH_WEBS ?? 1);
const STREAM = process.env.BENCH_STREAM === '1';
/** BENCH_PATH=models measures GET /v1/models instead (auth + RPM + catalog only: the web side's floor). */
const MODELS_ONLY = process.env.BENCH_PATH === 'models';
const MYSQL = process.env.BENCH_MYSQL ?? 'mysql://root@127.0.0.1:3306';

/** BENCH_PROFILE=dir writes a V8 CPU profile of each process there (open it in Chrome DevTools). */
const profileArgs = (role: string) =>
  process.env.BENCH_PROFILE
    ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`, `--cpu-prof-name=${role}-\${pid}.cpuprofile`]
    : [];

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const { port } = server.address() as { port: number };
  server.close();
  return port;
}

function rssMb(pid: number | undefined): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Math.round(Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024);
  } catch {
    return 0;
  }
}

async function adminCall(base: string, token: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = (await res.json()) as Record<string, unknown>;
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

/** CPU seconds (user + system) a process has used so far, from /proc (0 where unreadable). */
function cpuSeconds(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** The database and Redis servers' pids on this machine, when they are local. */
function serverPids(): Record<string, number | undefined> {
  const find = (name: string) => {
    for (const entry of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
      try {
        if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === name) return Number(entry);
      } catch {
        // process gone
      }
    }
    return undefined;
  };
  return { mariadbd: find('mariadbd') ?? find('mysqld'), 'redis-server': find('redis-server') };
}

function percentile(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] : 0;
}

/**
 * A fixed-answer OpenAI upstream, so the benchmark measures the gateway and not the mock's tokenizer.
 * BENCH_UPSTREAM=mock uses the full shipped mock instead.
 */
async function startFixedUpstream(): Promise<{ url: string; close(): Promise<void> }> {
  const completion = JSON.stringify({
    id: 'chatcmpl-bench',
    object: 'chat.completion',
    created: 0,
    model: 'bench',
    choices: [{ index: 0, message: { role: 'assistant', content: 'pong' }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 5, completion_tokens: 1, total_tokens: 6 },
  });
  const chunk = (delta: object, finish: string | null) =>
    `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 0, model: 'bench', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
  const stream =
    chunk({ role: 'assistant', content: '' }, null) +
    chunk({ content: 'pong' }, null) +
    chunk({}, 'stop') +
    `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 0, model: 'bench', choices: [], usage: { prompt_tokens: 5, completion_tokens: 1, total_tokens: 6 } })}\n\ndata: [DONE]\n\n`;
  const server = createHttpServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const streaming = body.includes('"stream":true');
      res.writeHead(200, { 'content-type': streaming ? 'text/event-stream' : 'application/json' });
      res.end(streaming ? stream : completion);
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(() => r())) };
}

async function main(): Promise<void> {
  const database = 'eastx_bench';
  const connection = await createConnection(MYSQL);
  await connection.query(`DROP DATABASE IF EXISTS ${database}`);
  await connection.end();
  const env: Record<string, string> = {
    NODE_ENV: 'production',
    DATABASE_URL: `${MYSQL}/${database}`,
    REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    QUEUE_PREFIX: `eastx-bench-${randomBytes(4).toString('hex')}`,
    ADMIN_TOKEN: randomBytes(16).toString('hex'),
    APP_SECRET: randomBytes(16).toString('hex'),
    LOG_LEVEL: 'warn',
    WORKER_CONCURRENCY: String(Math.max(CONCURRENCY, 16)),
  };
  await migrateToLatest(env.DATABASE_URL);
  const mock = process.env.BENCH_UPSTREAM === 'mock' ? await startMockUpstream() : await startFixedUpstream();

  const children: ChildProcess[] = [];
  const urls: string[] = [];
  for (let i = 0; i < WEBS; i++) {
    const port = await freePort();
    urls.push(`http://127.0.0.1:${port}`);
    children.push(
      spawn(process.execPath, [...profileArgs('web'), 'dist/src/web.js'], {
        cwd: ROOT,
        env: { ...process.env, ...env, PORT: String(port) },
        stdio: 'inherit',
      }),
    );
  }
  for (let i = 0; i < WORKERS; i++) {
    children.push(
      spawn(process.execPath, [...profileArgs('worker'), 'dist/workers/worker.js'], {
        cwd: ROOT,
        env: { ...process.env, ...env },
        stdio: 'inherit',
      }),
    );
  }
  const stopAll = () => children.forEach((c) => c.kill('SIGTERM'));
  process.on('SIGINT', () => {
    stopAll();
    process.exit(130);
  });
  for (;;) {
    const ok = await fetch(`${urls[0]}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    await sleep(100);
  }

  const admin = (method: string, path: string, body?: unknown) => adminCall(urls[0], env.ADMIN_TOKEN, method, path, body);
  const channel = await admin('POST', '/admin/api/channels', { name: 'bench', type: 'openai', base_url: `${mock.url}/v1` });
  for (let i = 0; i < 4; i++)
    await admin('POST', `/admin/api/channels/${channel.id}/tokens`, { secret: `bench-token-${i}`, max_concurrency: 1000 });
  await admin('PUT', '/admin/api/models/bench%2Fchat', {
    display_name: 'Bench',
    owned_by: 'bench',
    modality: 'chat',
    status: 'active',
    channel_id: channel.id,
    upstream_model: 'bench',
    input_price_per_1m: 1.5,
    output_price_per_1m: 6,
    max_output_tokens: 64,
    vision: false,
    tools: false,
  });
  const user = await admin('POST', '/admin/api/users', { email: 'bench@example.com' });
  await admin('POST', `/admin/api/users/${user.id}/credit`, { amount_usd: '1000' });
  const { key } = (await admin('POST', `/admin/api/users/${user.id}/keys`, { name: 'bench', rpm_limit: 1_000_000 })) as { key: string };

  const body = JSON.stringify({
    model: 'bench/chat',
    messages: [{ role: 'user', content: 'benchmark ping' }],
    max_tokens: 16,
    stream: STREAM,
  });
  // undici's request, not fetch: the load generator shares the 2 cores with what it measures
  const clientAgent = new Agent({ keepAliveTimeout: 60_000, connections: CONCURRENCY });
  const latencies: number[] = [];
  let errors = 0;
  let measuring = false;
  let stop = false;
  const worker = async (i: number) => {
    const url = `${urls[i % urls.length]}/v1/${MODELS_ONLY ? 'models' : 'chat/completions'}`;
    const headers: Record<string, string> = { authorization: `Bearer ${key}` };
    if (!MODELS_ONLY) headers['content-type'] = 'application/json';
    const options = {
      method: MODELS_ONLY ? ('GET' as const) : ('POST' as const),
      headers,
      body: MODELS_ONLY ? undefined : body,
      dispatcher: clientAgent,
    };
    while (!stop) {
      const started = performance.now();
      const res = await request(url, options).catch(() => undefined);
      const ok = res?.statusCode === 200;
      if (res) await res.body.arrayBuffer();
      if (!measuring) continue;
      if (ok) latencies.push(performance.now() - started);
      else errors++;
    }
  };
  const runners = Array.from({ length: CONCURRENCY }, (_, i) => worker(i));
  await sleep(2000);
  measuring = true;
  const processes: Record<string, number | undefined> = {
    bench: process.pid,
    ...Object.fromEntries(children.map((c, i) => [`${i < WEBS ? 'web' : 'worker'}${i}`, c.pid])),
    ...serverPids(),
  };
  const cpuBefore = Object.fromEntries(Object.entries(processes).map(([name, pid]) => [name, cpuSeconds(pid)]));
  const t0 = performance.now();
  let peakRss = children.map(() => 0);
  const sampler = setInterval(() => (peakRss = children.map((c, i) => Math.max(peakRss[i], rssMb(c.pid)))), 250);
  await sleep(SECONDS * 1000);
  measuring = false;
  const elapsed = (performance.now() - t0) / 1000;
  const cpuMsPerRequest = Object.fromEntries(
    Object.entries(processes).map(([name, pid]) => [
      name,
      +(((cpuSeconds(pid) - cpuBefore[name]) * 1000) / Math.max(1, latencies.length)).toFixed(2),
    ]),
  );
  stop = true;
  clearInterval(sampler);
  await Promise.all(runners);

  latencies.sort((a, b) => a - b);
  await sleep(500);
  const usage = (await admin('GET', `/admin/api/usage?user_id=${user.id}&limit=1`)) as { data: unknown[] };
  const account = await admin('GET', `/admin/api/users/${user.id}`);
  const [[row]] = (await (async () => {
    const c = await createConnection(`${MYSQL}/${database}`);
    const result = await c.query("SELECT COUNT(*) AS charges, COALESCE(SUM(amount_nano),0) AS total FROM ledger WHERE kind = 'charge'");
    await c.end();
    return result;
  })()) as unknown as [[{ charges: number; total: string }]];

  console.log(
    JSON.stringify(
      {
        mode: MODELS_ONLY ? 'GET /v1/models' : STREAM ? 'stream' : 'non-stream',
        seconds: Number(elapsed.toFixed(1)),
        concurrency: CONCURRENCY,
        webs: WEBS,
        workers: WORKERS,
        requests: latencies.length,
        errors,
        rps: Math.round(latencies.length / elapsed),
        latency_ms: {
          p50: +percentile(latencies, 0.5).toFixed(1),
          p95: +percentile(latencies, 0.95).toFixed(1),
          p99: +percentile(latencies, 0.99).toFixed(1),
        },
        cpu_ms_per_request: cpuMsPerRequest,
        peak_rss_mb: Object.fromEntries(children.map((_c, i) => [`${i < WEBS ? 'web' : 'worker'}${i}`, peakRss[i]])),
        ledger_charges_total: Number(row.charges),
        balance_usd: account.balance_usd,
        held_usd: account.held_usd,
        ledger_rows_listed: usage.data.length,
      },
      null,
      2,
    ),
  );
  stopAll();
  await mock.close();
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
