/**
 * npm run bench — what eastx adds to every call and what it costs, against the same upstream called
 * directly, in one run: latency one request at a time and open-loop at 200 req/s (from the scheduled send
 * time), CPU per request of the whole stack (web + worker + Redis + MariaDB, from /proc), closed-loop
 * throughput, stream first-token overhead, memory of 10,000 held streams, Redis commands and SQL statements
 * per request (the servers' own counters) and Redis's time per request script by script (its slow log), and
 * where one request's time goes, and where the time of 200 stream starts at once goes (OpenTelemetry spans).
 *
 * Everything runs on private servers it starts itself (MariaDB, Redis, the upstream: see scripts/bench/),
 * so counters and CPU belong to the benchmark alone. BENCH_SECONDS (default 10) sets each timed phase;
 * BENCH_HELD (default 10000) the held streams; BENCH_HOLD_SECONDS (default 0) how much longer to keep them open,
 * sampling the web's memory every 5 s (the lowest and highest growth are reported); BENCH_PROFILE=<dir> writes V8 CPU profiles, BENCH_HEAP_SNAPSHOT=<dir>
 * a heap snapshot of the web process while the streams are held, BENCH_LOGS=<dir> keeps the stack's logs
 * and the open loops' requests one by one (open-loop.tsv: when each was due, how late it went, how long it took),
 * BENCH_HELD_WORKERS (default 1) runs the held streams on that many worker processes, BENCH_WEB_FLAGS passes
 * node flags to the web process (`--trace-gc`). Results also go to bench-results.json.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus } from 'node:os';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { createConnection } from 'mysql2/promise';
import { migrateToLatest } from '../src/db/migrate.js';
import { closedLoop, holdStreams, type LatencyRun, openLoop, percentile, sequential, streamStarts, type Target } from './bench/load.js';
import { type ReceivedSpan, startTraceReceiver } from './bench/otlp.js';
import { type Counters, cpuSeconds, rssMb, startPrivateServers, syscalls } from './bench/servers.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const HELD = Number(process.env.BENCH_HELD ?? 10_000);
const HOLD_SECONDS = Number(process.env.BENCH_HOLD_SECONDS ?? 0);
const RATE = 200;

const HEAP_SNAPSHOT_DIR = process.env.BENCH_HEAP_SNAPSHOT;
const LOGS_DIR = process.env.BENCH_LOGS;
const HELD_WORKERS = Math.max(1, Number(process.env.BENCH_HELD_WORKERS ?? 1));
// the folders the bench writes into are made if missing (a missing logs folder kept redis-server from starting)
for (const dir of [HEAP_SNAPSHOT_DIR, LOGS_DIR, process.env.BENCH_PROFILE]) if (dir) mkdirSync(dir, { recursive: true });
const profileArgs = (role: string) => [
  ...(process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`, `--cpu-prof-name=${role}.cpuprofile`] : []),
  ...(HEAP_SNAPSHOT_DIR && role === 'web' ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${HEAP_SNAPSHOT_DIR}`] : []),
  // e.g. --trace-gc, which Node refuses in NODE_OPTIONS; its lines go to BENCH_LOGS/web.log
  ...(role === 'web' ? (process.env.BENCH_WEB_FLAGS ?? '').split(' ').filter(Boolean) : []),
];

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const { port } = server.address() as { port: number };
  server.close();
  return port;
}

/**
 * Starts a process of the stack; its JSON logs (stdout) are dropped, like a log drain that keeps up, or with
 * BENCH_LOGS=<dir> written to <dir>/<role>.log.
 */
function startNode(script: string, env: Record<string, string>, role: string, stdout: 'pipe' | 'ignore' = 'ignore'): ChildProcess {
  const logTo = LOGS_DIR && stdout === 'ignore' ? openSync(join(LOGS_DIR, `${role}.log`), 'a') : stdout;
  return spawn(process.execPath, [...profileArgs(role), script], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', logTo, 'inherit'],
  });
}

/** The port a process started with stdout 'pipe' prints once it listens (the upstream, the floor's web). */
const printedPort = (child: ChildProcess) =>
  new Promise<number>((resolve) => child.stdout?.once('data', (d) => resolve(Number(String(d).trim()))));

async function startUpstream(): Promise<{ url: string; pid: number; stop(): void }> {
  const child = startNode('dist/scripts/bench/upstream.js', {}, 'upstream', 'pipe');
  const port = await printedPort(child);
  return { url: `http://127.0.0.1:${port}`, pid: child.pid ?? 0, stop: () => child.kill('SIGTERM') };
}

async function waitHealthy(url: string): Promise<void> {
  for (;;) {
    if (
      await fetch(`${url}/healthz`).then(
        (r) => r.ok,
        () => false,
      )
    )
      return;
    await sleep(100);
  }
}

const ms = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '–');
const p50p99 = (values: number[]) => ({ p50: +ms(percentile(values, 0.5)), p99: +ms(percentile(values, 0.99)) });
/** A difference as the tables print it: "+2.1", or "-0.4" where eastx or the floor came out faster than direct. */
const signed = (n: number) => (n < 0 ? String(n) : `+${n}`);
const added = (a: LatencyRun, b: LatencyRun, p: number) => +ms(percentile(a.latencies, p) - percentile(b.latencies, p));
const summary = (run: LatencyRun) => ({ ok: run.ok, errors: run.errors, rps: Math.round(run.ok / run.seconds), ...p50p99(run.latencies) });
/** One row per span name, from what the trace receiver collected. */
const stageTable = <R>(spans: Map<string, ReceivedSpan[]>, rowOf: (spans: ReceivedSpan[]) => R): Record<string, R> =>
  Object.fromEntries([...spans.entries()].map(([name, named]) => [name, rowOf(named)]));

/** What to stop when the run ends, however it ends. */
const cleanups: Array<() => unknown> = [];

/** The open loops' requests, one line each in scheduled order, to line a slow stretch up with the machine's readings (CPU, iowait). */
function writeTimeline(file: string, runs: Record<string, LatencyRun>): void {
  const lines = ['target\tscheduled_at_ms\tsend_lag_ms\tlatency_ms\tstatus'];
  for (const [target, run] of Object.entries(runs)) {
    for (const r of run.timeline ?? []) lines.push([target, r.scheduledAt, ms(r.sendLagMs), ms(r.latencyMs), r.status].join('\t'));
  }
  writeFileSync(file, `${lines.join('\n')}\n`);
}

async function main(): Promise<void> {
  const servers = await startPrivateServers({ mysql: await freePort(), redis: await freePort() }, LOGS_DIR);
  cleanups.push(() => servers.stop());
  const upstream = await startUpstream();
  cleanups.push(() => upstream.stop());
  const traces = await startTraceReceiver();
  const databaseUrl = `${servers.mysqlUrl}/eastx_bench`;
  await migrateToLatest(databaseUrl);
  const adminToken = randomBytes(16).toString('hex');
  const env: Record<string, string> = {
    NODE_ENV: 'production',
    DATABASE_URL: databaseUrl,
    REDIS_URL: servers.redisUrl,
    QUEUE_PREFIX: 'eastx-bench',
    ADMIN_TOKEN: adminToken,
    APP_SECRET: randomBytes(16).toString('hex'),
    LOG_LEVEL: 'info', // what operators run: one access-log line per request
    WORKER_CONCURRENCY: String(Math.max(HELD + 200, 1000)),
    CHAT_DEADLINE_MS: '600000',
  };
  const port = await freePort();
  const webUrl = `http://127.0.0.1:${port}`;
  let web = startNode('dist/src/web.js', { ...env, PORT: String(port) }, 'web');
  let worker = startNode('dist/workers/worker.js', env, 'worker');
  cleanups.push(
    () => web.kill('SIGTERM'),
    () => worker.kill('SIGTERM'),
  );
  await waitHealthy(webUrl);

  const admin = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${webUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = (await res.json()) as Record<string, unknown>;
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  const channel = await admin('POST', '/admin/api/channels', { name: 'bench', type: 'openai', base_url: `${upstream.url}/v1` });
  for (let i = 0; i < 4; i++)
    await admin('POST', `/admin/api/channels/${channel.id}/tokens`, { secret: `bench-token-${i}`, max_concurrency: 10_000 });
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
  await admin('POST', `/admin/api/users/${user.id}/credit`, { amount_usd: '100000' });
  const { key } = (await admin('POST', `/admin/api/users/${user.id}/keys`, { name: 'bench', rpm_limit: 1_000_000 })) as { key: string };

  /**
   * The web process's JavaScript heap in MB, from one read of its /metrics: `used`, live objects and garbage
   * not yet collected; `total`, what V8 holds from the system (in use or free), part of its RSS.
   */
  const webHeapMb = async () => {
    const res = await fetch(`${webUrl}/metrics`, { headers: { authorization: `Bearer ${adminToken}` } });
    const text = await res.text();
    const gaugeMb = (name: string) => {
      const value = new RegExp(`^eastx_${name} (\\d+)`, 'm').exec(text);
      return value ? Math.round(Number(value[1]) / 2 ** 20) : Number.NaN;
    };
    return { used: gaugeMb('nodejs_heap_size_used_bytes'), total: gaugeMb('nodejs_heap_size_total_bytes') };
  };

  const chatBody = (extra: Record<string, unknown> = {}) =>
    JSON.stringify({
      model: 'bench/chat',
      messages: [{ role: 'user', content: 'say sixteen words about otters' }],
      max_tokens: 32,
      ...extra,
    });
  const eastx: Target = {
    url: `${webUrl}/v1/chat/completions`,
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: chatBody(),
  };
  const direct: Target = { ...eastx, url: `${upstream.url}/v1/chat/completions`, body: chatBody({ model: 'bench' }) };
  const stream = (t: Target, extra: Record<string, unknown> = {}): Target => ({
    ...t,
    body: chatBody({ ...(t === direct ? { model: 'bench' } : {}), stream: true, ...extra }),
  });
  let eastxSuccesses = 0;
  /** The request ids of eastx's successful streams, checked one by one against the ledger at the end. */
  const streamIds: string[] = [];
  const counted = (run: LatencyRun) => {
    eastxSuccesses += run.ok;
    streamIds.push(...(run.ids ?? []));
    return run;
  };
  const stack = () => ({ web: web.pid, worker: worker.pid, redis: servers.pids.redis, mariadb: servers.pids.mariadbd });
  const cpuOf = (pids: Record<string, number | undefined>) =>
    Object.fromEntries(Object.entries(pids).map(([n, pid]) => [n, cpuSeconds(pid)]));

  /** What `run` costs each process of `pids` in CPU ms per successful request, and all of them together. */
  const cpuDuring = async (pids: Record<string, number | undefined>, run: () => Promise<LatencyRun>) => {
    const cpu0 = cpuOf(pids);
    const result = await run();
    const cpu1 = cpuOf(pids);
    const perProcess = Object.fromEntries(
      Object.keys(cpu0).map((n) => [n, +(((cpu1[n] - cpu0[n]) * 1000) / Math.max(1, result.ok)).toFixed(3)]),
    );
    const total = +Object.values(perProcess)
      .reduce((a, b) => a + b, 0)
      .toFixed(3);
    return { run: result, perProcess, total };
  };

  const callsOf = (pids: Record<string, number | undefined>) =>
    Object.fromEntries(Object.entries(pids).map(([n, pid]) => [n, syscalls(pid)]));

  // warm up both paths (JIT, connection pools, catalog and key caches)
  counted(await sequential(eastx, 300));
  await sequential(direct, 300);

  // 1. per-request server work, one request at a time (no batching): non-stream, then stream
  const perRequest = async (target: Target, count: number, pids: Record<string, number | undefined> = stack(), billed = true) => {
    const before: Counters = await servers.counters();
    const callsBefore = callsOf(pids);
    const run = await sequential(target, count);
    if (billed) counted(run);
    const callsAfter = callsOf(pids);
    const after: Counters = await servers.counters();
    const per = (k: Exclude<keyof Counters, 'redisByCommand'>) => +((after[k] - before[k]) / run.ok).toFixed(2);
    const byCommand = Object.fromEntries(
      Object.entries(after.redisByCommand)
        .map(([name, calls]) => [name, +((calls - (before.redisByCommand[name] ?? 0)) / run.ok).toFixed(2)] as const)
        .filter(([, calls]) => calls > 0)
        .sort((a, b) => b[1] - a[1]),
    );
    const perProcess = (pick: 'writes' | 'reads') =>
      Object.fromEntries(Object.keys(callsBefore).map((n) => [n, +((callsAfter[n][pick] - callsBefore[n][pick]) / run.ok).toFixed(1)]));
    return {
      writeSyscalls: perProcess('writes'),
      readSyscalls: perProcess('reads'),
      redisByCommand: byCommand,
      requests: run.ok,
      redisCommands: per('redisCommands'),
      redisScripts: per('redisScripts'),
      publish: per('redisPublish'),
      sqlStatements: per('sqlStatements'),
      sqlTransactions: per('sqlTransactions'),
    };
  };
  const workNonStream = await perRequest(eastx, 1000);
  const workStream = await perRequest(stream(eastx), 300);
  // Redis time per request, script by script (the slow log at a 0 µs threshold, one request at a time)
  let scriptRun: LatencyRun | undefined;
  const redisTime = await servers.redisTimeByScript(async () => {
    scriptRun = counted(await sequential(eastx, 200));
  }, eastxScripts());
  const scriptRequests = scriptRun?.ok || 1;
  const redisUsecPerRequest = Object.fromEntries(
    Object.entries(redisTime)
      .sort((a, b) => b[1].usec - a[1].usec)
      .map(([name, time]) => [name, { calls: +(time.calls / scriptRequests).toFixed(2), usec: +(time.usec / scriptRequests).toFixed(1) }]),
  );

  // 2. one request at a time
  const seqDirect = await sequential(direct, 1000);
  const seqEastx = counted(await sequential(eastx, 1000));

  // 3. open loop at 200 req/s, with CPU per request
  const { run: openDirect, total: directCpuMs } = await cpuDuring({ upstream: upstream.pid }, () => openLoop(direct, RATE, SECONDS));
  const {
    run: openEastx,
    perProcess: cpuMsPerRequest,
    total: cpuTotal,
  } = await cpuDuring(stack(), async () => counted(await openLoop(eastx, RATE, SECONDS)));
  if (LOGS_DIR) writeTimeline(join(LOGS_DIR, 'open-loop.tsv'), { direct: openDirect, eastx: openEastx });

  // 4. closed loop
  const closed200Direct = await closedLoop(direct, 200, SECONDS);
  const closed200 = counted(await closedLoop(eastx, 200, SECONDS));
  const closed50Direct = await closedLoop(direct, 50, SECONDS);
  const closed50 = counted(await closedLoop(eastx, 50, SECONDS));

  // 5. streams: 200 concurrent starts (time to the first data event), then HELD streams held open
  const startsDirect = await streamStarts(stream(direct), 200);
  const starts = counted(await streamStarts(stream(eastx), 200));
  await sleep(1000);
  // more workers share the burst (their run claims tell a busy worker's job from a dead one's)
  const heldWorkers = Array.from({ length: HELD_WORKERS - 1 }, (_, i) => startNode('dist/workers/worker.js', env, `worker-${i + 2}`));
  cleanups.push(...heldWorkers.map((w) => () => w.kill('SIGTERM')));
  if (heldWorkers.length > 0) await sleep(3000);
  const rssBefore = rssMb(web.pid);
  const { used: heapBefore, total: heapTotalBefore } = await webHeapMb();
  const held = await holdStreams(stream(eastx, { bench_hold: true }), HELD);
  await sleep(2000);
  const rssHeld = rssMb(web.pid);
  const { used: heapHeld, total: heapTotalHeld } = await webHeapMb();
  // held longer: the growth between and after the old generation's full collections (the burst's garbage goes then)
  const rssSamples = [rssHeld];
  const heapSamples = [heapHeld];
  for (let waited = 0; waited < HOLD_SECONDS; waited += 5) {
    await sleep(5000);
    rssSamples.push(rssMb(web.pid));
    heapSamples.push((await webHeapMb()).used);
  }
  const longHold = {
    rssMin: Math.min(...rssSamples),
    rssMax: Math.max(...rssSamples),
    heapMin: Math.min(...heapSamples),
    heapMax: Math.max(...heapSamples),
  };
  if (HEAP_SNAPSHOT_DIR) {
    process.kill(web.pid!, 'SIGUSR2'); // the web writes a heap snapshot of the held streams (it stalls meanwhile)
    await sleep(30_000);
  }
  const workerRssHeld = rssMb(worker.pid);
  eastxSuccesses += held.open; // held streams are billed for what they produced
  await held.close();
  streamIds.push(...held.ids);
  await sleep(3000);
  for (const extra of heldWorkers) extra.kill('SIGTERM');

  // 6. where the time goes: the same stack restarted with OpenTelemetry exporting to our receiver
  web.kill('SIGTERM');
  worker.kill('SIGTERM');
  await sleep(2000);
  const otel = { OTEL_EXPORTER_OTLP_ENDPOINT: traces.endpoint, OTEL_BSP_SCHEDULE_DELAY: '200' };
  web = startNode('dist/src/web.js', { ...env, ...otel, PORT: String(port) }, 'web-otel');
  worker = startNode('dist/workers/worker.js', { ...env, ...otel }, 'worker-otel');
  await waitHealthy(webUrl);
  counted(await sequential(eastx, 100));
  traces.spans.clear();
  counted(await sequential(eastx, 500));
  await sleep(1500);
  const stages = stageTable(traces.spans, (spans) => ({ count: spans.length, ...p50p99(spans.map((s) => s.ms)) }));
  // the same stages for 200 stream starts at once: how long each took, and by when (from the burst's start) each was done
  counted(await streamStarts(stream(eastx), 200));
  await sleep(1500);
  traces.spans.clear();
  const burstStartedAt = Date.now();
  const burst = counted(await streamStarts(stream(eastx), 200));
  await sleep(1500);
  const burstStages = stageTable(traces.spans, (spans) => {
    const doneBy = spans.map((s) => s.endedAt - burstStartedAt);
    return {
      count: spans.length,
      ...p50p99(spans.map((s) => s.ms)),
      done_by_p50: +ms(percentile(doneBy, 0.5)),
      done_by_last: +ms(Math.max(...doneBy)),
    };
  });

  // 7. the floor: the fixed architecture's hop with nothing else on it (scripts/bench/floor.ts), on the same
  // Redis and upstream, with eastx's processes stopped
  web.kill('SIGTERM');
  worker.kill('SIGTERM');
  await sleep(2000);
  const floorOf = async (queue: 'bullmq' | 'list') => {
    const floorEnv = { REDIS_URL: servers.redisUrl, UPSTREAM_URL: upstream.url, FLOOR_QUEUE: queue };
    const startFloor = async (name: string, concurrency = 1000) => {
      const workerEnv = { ...floorEnv, FLOOR_ROLE: 'worker', FLOOR_CONCURRENCY: String(concurrency) };
      const worker = startNode('dist/scripts/bench/floor.js', workerEnv, `${name}-worker`);
      const web = startNode('dist/scripts/bench/floor.js', { ...floorEnv, FLOOR_ROLE: 'web' }, `${name}-web`, 'pipe');
      cleanups.push(
        () => web.kill('SIGTERM'),
        () => worker.kill('SIGTERM'),
      );
      const port = await printedPort(web);
      return { web, worker, target: { ...direct, url: `http://127.0.0.1:${port}/v1/chat/completions` } as Target };
    };
    const { web: floorWeb, worker: floorWorker, target } = await startFloor(`floor-${queue}`);
    const pids = { web: floorWeb.pid, worker: floorWorker.pid, redis: servers.pids.redis };
    await sequential(target, 300);
    const work = await perRequest(target, 1000, pids, false);
    const seq = await sequential(target, 1000);
    const open = await cpuDuring(pids, () => openLoop(target, RATE, SECONDS));
    const c200 = await closedLoop(target, 200, SECONDS);
    const c50 = await closedLoop(target, 50, SECONDS);
    const starts = await streamStarts({ ...stream(direct), url: target.url }, 200);
    floorWeb.kill('SIGTERM');
    floorWorker.kill('SIGTERM');
    // the same held streams as eastx's, on a web process started for them: a heap the earlier phases grew
    // would take them in without growing (the floor's state per stream is a closure and its response)
    const forHolding = await startFloor(`floor-${queue}-held`, Math.max(HELD + 200, 1000));
    await sleep(1000);
    const floorRssBefore = rssMb(forHolding.web.pid);
    const floorHeld = await holdStreams({ ...stream(direct, { bench_hold: true }), url: forHolding.target.url }, HELD);
    await sleep(2000);
    const floorRssHeld = rssMb(forHolding.web.pid);
    await floorHeld.close();
    forHolding.web.kill('SIGTERM');
    forHolding.worker.kill('SIGTERM');
    return {
      sequential: { ...summary(seq), added_p50_ms: added(seq, seqDirect, 0.5) },
      open_loop_200: {
        ...summary(open.run),
        added_p50_ms: added(open.run, openDirect, 0.5),
        added_p99_ms: added(open.run, openDirect, 0.99),
      },
      cpu_ms_per_request_200rps: open.perProcess,
      cpu_ms_total: open.total,
      closed_loop: { c200: summary(c200), c50: summary(c50) },
      stream_first_token_200: { ...summary(starts), added_p99_ms: added(starts, startsDirect, 0.99) },
      held_streams: { open: floorHeld.open, web_rss_growth_mb: floorRssHeld - floorRssBefore },
      per_request: { redisCommands: work.redisCommands, redisScripts: work.redisScripts, writeSyscalls: work.writeSyscalls },
      failed: seq.errors + open.run.errors + c200.errors + c50.errors + starts.errors,
    };
  };
  const floor = { bullmq: await floorOf('bullmq'), list: await floorOf('list') };

  // 8. every success billed exactly once
  await sleep(1000);
  const db = await createConnection(databaseUrl);
  const [[ledger]] = (await db.query(
    "SELECT COUNT(*) AS charges, COUNT(DISTINCT request_id) AS ids, (SELECT COUNT(*) FROM holds) AS holds FROM ledger WHERE kind = 'charge'",
  )) as unknown as [[{ charges: number; ids: number; holds: number }]];
  // the streams by request id: a success the ledger has no charge for is named (to look up in BENCH_LOGS)
  const charged = new Set<string>();
  for (let i = 0; i < streamIds.length; i += 1000) {
    const [rows] = (await db.query("SELECT request_id FROM ledger WHERE kind = 'charge' AND request_id IN (?)", [
      streamIds.slice(i, i + 1000),
    ])) as unknown as [Array<{ request_id: string }>];
    for (const row of rows) charged.add(row.request_id);
  }
  const streamsUncharged = streamIds.filter((id) => !charged.has(id));
  await db.end();

  const results = {
    machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
    sequential: { direct: summary(seqDirect), eastx: summary(seqEastx), added_p50_ms: added(seqEastx, seqDirect, 0.5) },
    open_loop_200: {
      direct: summary(openDirect),
      eastx: summary(openEastx),
      added_p50_ms: added(openEastx, openDirect, 0.5),
      added_p99_ms: added(openEastx, openDirect, 0.99),
    },
    cpu_ms_per_request_200rps: { direct_upstream: directCpuMs, eastx: cpuMsPerRequest, eastx_total: cpuTotal },
    closed_loop: {
      c200: { direct: summary(closed200Direct), eastx: summary(closed200) },
      c50: { direct: summary(closed50Direct), eastx: summary(closed50) },
    },
    stream_first_token_200: {
      direct: summary(startsDirect),
      eastx: summary(starts),
      added_p50_ms: added(starts, startsDirect, 0.5),
      added_p99_ms: added(starts, startsDirect, 0.99),
    },
    held_streams: {
      requested: HELD,
      open: held.open,
      web_rss_mb_before: rssBefore,
      web_rss_mb_held: rssHeld,
      web_rss_growth_mb: rssHeld - rssBefore,
      web_heap_used_mb_before: heapBefore,
      web_heap_used_mb_held: heapHeld,
      web_heap_total_mb_before: heapTotalBefore,
      web_heap_total_mb_held: heapTotalHeld,
      ...(HOLD_SECONDS > 0
        ? {
            held_seconds: HOLD_SECONDS,
            web_rss_growth_mb_range: [longHold.rssMin - rssBefore, longHold.rssMax - rssBefore],
            web_heap_growth_mb_range: [longHold.heapMin - heapBefore, longHold.heapMax - heapBefore],
          }
        : {}),
      worker_rss_mb_held: workerRssHeld,
    },
    per_request: { non_stream: workNonStream, stream: workStream, redis_usec_by_script: redisUsecPerRequest },
    stages_ms: stages,
    stream_starts_200_traced: { first_token: summary(burst), stages_ms: burstStages },
    floor,
    billing: {
      successes: eastxSuccesses,
      charges: Number(ledger.charges),
      distinct_request_ids: Number(ledger.ids),
      open_holds: Number(ledger.holds),
      streams_checked_by_id: streamIds.length,
      streams_uncharged: streamsUncharged,
    },
  };
  writeFileSync('bench-results.json', `${JSON.stringify(results, null, 2)}\n`);

  const row = (label: string, d: string, e: string, target: string) => console.log(`| ${label} | ${d} | ${e} | ${target} |`);
  /** Failed requests of a phase, shown beside its figures (they are not in its latencies). */
  const failed = (run: { errors: number }) => (run.errors > 0 ? `, ${run.errors} failed` : '');
  console.log('\n| | direct | eastx | target |\n|---|---|---|---|');
  row(
    'one at a time: p50 (added)',
    `${ms(results.sequential.direct.p50)} ms${failed(seqDirect)}`,
    `${ms(results.sequential.eastx.p50)} ms (${signed(results.sequential.added_p50_ms)})${failed(seqEastx)}`,
    'added ≤ 3 ms',
  );
  row(
    'open loop 200 req/s: p50 / p99',
    `${results.open_loop_200.direct.p50} / ${results.open_loop_200.direct.p99} ms${failed(openDirect)}`,
    `${results.open_loop_200.eastx.p50} / ${results.open_loop_200.eastx.p99} ms (${signed(results.open_loop_200.added_p50_ms)} / ${signed(results.open_loop_200.added_p99_ms)})${failed(openEastx)}`,
    'added ≤ 3 / 15 ms',
  );
  row(
    'CPU per request at 200 req/s',
    `${results.cpu_ms_per_request_200rps.direct_upstream} ms (upstream)`,
    `${cpuTotal} ms ${JSON.stringify(cpuMsPerRequest)}`,
    '≤ 1.5 ms',
  );
  row(
    'closed loop, 200 connections',
    `${results.closed_loop.c200.direct.rps} req/s${failed(closed200Direct)}`,
    `${results.closed_loop.c200.eastx.rps} req/s${failed(closed200)}`,
    '≥ 1,500',
  );
  row(
    'closed loop, 50 connections',
    `${results.closed_loop.c50.direct.rps} req/s${failed(closed50Direct)}`,
    `${results.closed_loop.c50.eastx.rps} req/s${failed(closed50)}`,
    '≥ 1,000',
  );
  row(
    'stream first token, 200 starts: p50 / p99',
    `${results.stream_first_token_200.direct.p50} / ${results.stream_first_token_200.direct.p99} ms${failed(startsDirect)}`,
    `${results.stream_first_token_200.eastx.p50} / ${results.stream_first_token_200.eastx.p99} ms (${signed(results.stream_first_token_200.added_p99_ms)} p99)${failed(starts)}`,
    'added p99 ≤ 30 ms',
  );
  row(
    `${HELD} streams held: web RSS growth`,
    '',
    `${held.open} open, +${results.held_streams.web_rss_growth_mb} MB (JS heap in use +${heapHeld - heapBefore} MB, held by V8 +${heapTotalHeld - heapTotalBefore} MB)`,
    '≤ 200 MB',
  );
  if (HOLD_SECONDS > 0) {
    row(
      `the same streams held ${HOLD_SECONDS} s longer: lowest – highest growth`,
      '',
      `RSS +${longHold.rssMin - rssBefore} – +${longHold.rssMax - rssBefore} MB (JS heap +${longHold.heapMin - heapBefore} – +${longHold.heapMax - heapBefore} MB)`,
      '',
    );
  }
  row(
    'per non-stream request: Redis commands (scripts) / SQL statements (transactions)',
    '',
    `${workNonStream.redisCommands} (${workNonStream.redisScripts}) / ${workNonStream.sqlStatements} (${workNonStream.sqlTransactions})`,
    '',
  );
  const listed = (counts: Record<string, number>) =>
    Object.entries(counts)
      .map(([name, n]) => `${name} ${n}`)
      .join(', ');
  row(
    'per non-stream request: write / read system calls by process (/proc/<pid>/io)',
    '',
    `writes: ${listed(workNonStream.writeSyscalls)}; reads: ${listed(workNonStream.readSyscalls)}`,
    '',
  );
  row(
    'per stream request: the same, and PUBLISH',
    '',
    `${workStream.redisCommands} (${workStream.redisScripts}) / ${workStream.sqlStatements} (${workStream.sqlTransactions}), ${workStream.publish} PUBLISH`,
    '',
  );
  row(
    'per non-stream request, Redis time by script (slow log): µs (calls)',
    '',
    Object.entries(redisUsecPerRequest)
      .map(([name, t]) => `${name} ${t.usec} (${t.calls})`)
      .join(', '),
    '',
  );
  for (const [name, s] of Object.entries(stages)) row(`stage ${name}: p50 / p99`, '', `${s.p50} / ${s.p99} ms (${s.count} spans)`, '');
  const burstFirstToken = results.stream_starts_200_traced.first_token;
  row('200 stream starts, traced: first token p50 / p99', '', `${burstFirstToken.p50} / ${burstFirstToken.p99} ms${failed(burst)}`, '');
  for (const [name, s] of Object.entries(burstStages))
    row(
      `200 stream starts, stage ${name}: p50 / p99; done by (from the burst's start) p50 / last`,
      '',
      `${s.p50} / ${s.p99} ms; ${s.done_by_p50} / ${s.done_by_last} ms (${s.count} spans)`,
      '',
    );
  row(
    'billing: successes = charges = distinct ids, no hold left',
    '',
    `${results.billing.successes} / ${results.billing.charges} / ${results.billing.distinct_request_ids}, ${results.billing.open_holds} holds; ${streamIds.length} streams checked by request id${streamsUncharged.length > 0 ? `, with no charge: ${streamsUncharged.slice(0, 5).join(', ')}${streamsUncharged.length > 5 ? ` and ${streamsUncharged.length - 5} more` : ''}` : ''}`,
    'equal, 0',
  );

  console.log(
    "\n| the fixed architecture's floor: the same hop with no auth, limits, money or validation (scripts/bench/floor.ts) | BullMQ job | Redis list | eastx |\n|---|---|---|---|",
  );
  const floorRow = (label: string, cell: (f: (typeof floor)['list']) => string, eastxCell: string) =>
    console.log(`| ${label} | ${cell(floor.bullmq)} | ${cell(floor.list)} | ${eastxCell} |`);
  floorRow('one at a time: added p50', (f) => `${signed(f.sequential.added_p50_ms)} ms`, `${signed(results.sequential.added_p50_ms)} ms`);
  floorRow(
    'open loop 200 req/s: added p50 / p99',
    (f) => `${signed(f.open_loop_200.added_p50_ms)} / ${signed(f.open_loop_200.added_p99_ms)} ms`,
    `${signed(results.open_loop_200.added_p50_ms)} / ${signed(results.open_loop_200.added_p99_ms)} ms`,
  );
  floorRow(
    'CPU per request at 200 req/s',
    (f) => `${f.cpu_ms_total} ms ${JSON.stringify(f.cpu_ms_per_request_200rps)}`,
    `${cpuTotal} ms (web, worker and Redis: ${+(cpuTotal - (cpuMsPerRequest.mariadb ?? 0)).toFixed(3)} ms)`,
  );
  floorRow(
    'closed loop, 200 / 50 connections',
    (f) => `${f.closed_loop.c200.rps} / ${f.closed_loop.c50.rps} req/s`,
    `${results.closed_loop.c200.eastx.rps} / ${results.closed_loop.c50.eastx.rps} req/s`,
  );
  floorRow(
    'stream first token, 200 starts: p50 / p99 (added p99)',
    (f) => `${f.stream_first_token_200.p50} / ${f.stream_first_token_200.p99} ms (${signed(f.stream_first_token_200.added_p99_ms)})`,
    `${results.stream_first_token_200.eastx.p50} / ${results.stream_first_token_200.eastx.p99} ms (${signed(results.stream_first_token_200.added_p99_ms)})`,
  );
  floorRow(
    `${HELD} streams held: web RSS growth`,
    (f) => `${f.held_streams.open} open, +${f.held_streams.web_rss_growth_mb} MB`,
    `${held.open} open, +${results.held_streams.web_rss_growth_mb} MB`,
  );
  floorRow(
    'per request: Redis commands (scripts); write system calls',
    (f) => `${f.per_request.redisCommands} (${f.per_request.redisScripts}); ${listed(f.per_request.writeSyscalls)}`,
    `${workNonStream.redisCommands} (${workNonStream.redisScripts}); ${listed(workNonStream.writeSyscalls)}`,
  );
  floorRow('failed requests', (f) => String(f.failed), '');

  await traces.close();
  await stopAll();
  const billedExactly =
    results.billing.successes === results.billing.charges &&
    results.billing.charges === results.billing.distinct_request_ids &&
    streamsUncharged.length === 0;
  process.exit(billedExactly ? 0 : 1);
}

/** eastx's Redis scripts by SHA-1 (how EVALSHA names them), to tell them from BullMQ's in the slow log. */
function eastxScripts(): Map<string, string> {
  const files = readdirSync(join(ROOT, 'src'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.lua'));
  return new Map(
    files.map((f) => [
      createHash('sha1')
        .update(readFileSync(join(ROOT, 'src', f)))
        .digest('hex'),
      basename(f, '.lua'),
    ]),
  );
}

async function stopAll(): Promise<void> {
  for (const cleanup of cleanups.reverse()) await cleanup();
}

process.once('SIGINT', () => {
  void stopAll().finally(() => process.exit(130));
});

main().catch(async (err) => {
  console.error(err);
  await stopAll();
  process.exit(1);
});
