/**
 * npm run demo — the whole gateway on one machine, offline: migrates, starts the shipped mock upstream,
 * seeds a demo account, key and catalog, runs web + worker as separate processes, proves the quickstart
 * request works, and prints how to call it. Ctrl-C stops everything.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import * as ops from '../src/admin/operations/index.js';
import { channelBody, creditBody, keyBody, modelBody, tokenBody, userBody } from '../src/admin/schemas.js';
import { loadConfig } from '../src/config.js';
import { createDb } from '../src/db/index.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { type MockUpstream, startMockUpstream } from '../src/mock/upstream.js';
import { createRedis, RedisKeys } from '../src/redis/index.js';
import { SecretBox } from '../src/upstream/secrets.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DEMO_EMAIL = 'demo@eastx.local';
const DEMO_PASSWORD = 'eastx-demo-password';
/** An operator (is_admin) login for the console's operator area and Bull Board. */
const OPERATOR_EMAIL = 'admin@eastx.local';

type ChannelSeed = { name: string; type: 'openai' | 'anthropic' | 'dashscope'; baseUrl: string; secrets: string[] };
type ModelSeed = Record<string, unknown> & { id: string; channel: string };

/** OpenAI's list prices, for the mock model and the real one alike. */
const GPT_4O_MINI = {
  owned_by: 'openai',
  modality: 'chat',
  upstream_model: 'gpt-4o-mini',
  input_price_per_1m: 0.15,
  output_price_per_1m: 0.6,
  max_output_tokens: 16384,
  vision: true,
  tools: true,
};

/** Anthropic's list prices, for the mock model and the real one alike. */
const CLAUDE_SONNET = {
  owned_by: 'anthropic',
  modality: 'chat',
  upstream_model: 'claude-sonnet-4-6',
  input_price_per_1m: 3,
  output_price_per_1m: 15,
  cache_read_price_per_1m: 0.3,
  cache_write_price_per_1m: 3.75,
  max_output_tokens: 8192,
  vision: true,
  tools: true,
};

function catalogSeed(mock: MockUpstream): { channels: ChannelSeed[]; models: ModelSeed[] } {
  const channels: ChannelSeed[] = [
    { name: 'mock-openai', type: 'openai', baseUrl: `${mock.url}/v1`, secrets: ['mock-openai-token-1', 'mock-openai-token-2'] },
    { name: 'mock-anthropic', type: 'anthropic', baseUrl: mock.url, secrets: ['mock-anthropic-token-1'] },
    { name: 'mock-dashscope', type: 'dashscope', baseUrl: mock.url, secrets: ['mock-dashscope-token-1'] },
  ];
  const models: ModelSeed[] = [
    {
      id: 'claude-sonnet-4-6',
      channel: 'mock-anthropic',
      display_name: 'Claude Sonnet 4.6 (mock)',
      ...CLAUDE_SONNET,
    },
    {
      id: 'gpt-4o-mini',
      channel: 'mock-openai',
      display_name: 'GPT-4o mini (mock)',
      ...GPT_4O_MINI,
    },
    {
      id: 'qwen/qwen-plus',
      channel: 'mock-dashscope',
      display_name: 'Qwen Plus (mock)',
      owned_by: 'alibaba',
      modality: 'chat',
      upstream_model: 'qwen-plus',
      input_price_per_1m: 0.4,
      output_price_per_1m: 1.2,
      max_output_tokens: 8192,
      vision: false,
      tools: true,
    },
    {
      id: 'text-embedding-3-small',
      channel: 'mock-openai',
      display_name: 'Text Embedding 3 Small (mock)',
      owned_by: 'openai',
      modality: 'embedding',
      upstream_model: 'text-embedding-3-small',
      input_price_per_1m: 0.02,
    },
    {
      id: 'wanx-v1',
      channel: 'mock-dashscope',
      display_name: 'Wanx v1 (mock)',
      owned_by: 'alibaba',
      modality: 'image',
      upstream_model: 'wanx-v1',
      price_per_image: 0.02,
      sizes: ['1024x1024', '720x1280', '1280x720'],
    },
    {
      id: 'gpt-5.5-preview',
      channel: 'mock-openai',
      display_name: 'GPT-5.5 preview',
      owned_by: 'openai',
      modality: 'chat',
      status: 'coming_soon',
      upstream_model: 'gpt-5.5-preview',
      input_price_per_1m: 5,
      output_price_per_1m: 20,
    },
  ];
  // Real providers, when their keys are in the environment.
  if (process.env.OPENAI_API_KEY) {
    channels.push({ name: 'openai', type: 'openai', baseUrl: 'https://api.openai.com/v1', secrets: [process.env.OPENAI_API_KEY] });
    models.push({
      id: 'openai/gpt-4o-mini',
      channel: 'openai',
      display_name: 'GPT-4o mini',
      ...GPT_4O_MINI,
    });
  }
  if (process.env.ANTHROPIC_API_KEY) {
    channels.push({ name: 'anthropic', type: 'anthropic', baseUrl: 'https://api.anthropic.com', secrets: [process.env.ANTHROPIC_API_KEY] });
    models.push({
      id: 'anthropic/claude-sonnet-4-6',
      channel: 'anthropic',
      display_name: 'Claude Sonnet 4.6',
      ...CLAUDE_SONNET,
    });
  }
  if (process.env.DASHSCOPE_API_KEY) {
    channels.push({
      name: 'dashscope',
      type: 'dashscope',
      baseUrl: 'https://dashscope.aliyuncs.com',
      secrets: [process.env.DASHSCOPE_API_KEY],
    });
    models.push({
      id: 'dashscope/qwen-plus',
      channel: 'dashscope',
      display_name: 'Qwen Plus',
      owned_by: 'alibaba',
      modality: 'chat',
      upstream_model: 'qwen-plus',
      input_price_per_1m: 0.4,
      output_price_per_1m: 1.2,
      max_output_tokens: 8192,
      tools: true,
    });
    models.push({
      id: 'dashscope/wanx2.1-t2i-turbo',
      channel: 'dashscope',
      display_name: 'Wanx 2.1 turbo',
      owned_by: 'alibaba',
      modality: 'image',
      upstream_model: 'wanx2.1-t2i-turbo',
      price_per_image: 0.14,
      sizes: ['1024x1024'],
    });
  }
  return { channels, models };
}

/** Idempotent: channels are found by name, models upserted, the demo user created once and topped up. */
async function seed(deps: ops.AdminDeps, mock: MockUpstream): Promise<{ key: string; email: string }> {
  const { channels, models } = catalogSeed(mock);
  const existing = await deps.db.selectFrom('channels').select(['id', 'name']).execute();
  const channelIds = new Map<string, number>();
  for (const channel of channels) {
    let id = existing.find((c) => c.name === channel.name)?.id;
    if (id === undefined) {
      id = (await ops.createChannel(deps, channelBody.parse({ name: channel.name, type: channel.type, base_url: channel.baseUrl }))).id;
      for (const secret of channel.secrets)
        await ops.addToken(deps, Number(id), tokenBody.parse({ secret, max_concurrency: 8, name: channel.name }));
    } else {
      await deps.db.updateTable('channels').set({ base_url: channel.baseUrl }).where('id', '=', id).execute();
    }
    channelIds.set(channel.name, Number(id));
  }
  for (const { id, channel, ...fields } of models) {
    await ops.putModel(deps, id, modelBody.parse({ status: 'active', ...fields, channel_id: channelIds.get(channel) }));
  }

  let user = await deps.db.selectFrom('users').select(['id', 'balance_nano']).where('email', '=', DEMO_EMAIL).executeTakeFirst();
  if (!user) {
    const created = await ops.createUser(deps, userBody.parse({ email: DEMO_EMAIL, password: DEMO_PASSWORD }));
    user = { id: created.id, balance_nano: 0 };
  }
  if (!(await deps.db.selectFrom('users').select('id').where('email', '=', OPERATOR_EMAIL).executeTakeFirst())) {
    await ops.createUser(deps, userBody.parse({ email: OPERATOR_EMAIL, password: DEMO_PASSWORD, is_admin: true }));
  }
  if (BigInt(user.balance_nano) < 1_000_000_000n)
    await ops.creditUser(deps, Number(user.id), creditBody.parse({ amount_usd: '20', note: 'demo credit' }));
  const key = await ops.createKey(
    deps,
    Number(user.id),
    keyBody.parse({ name: `demo ${new Date().toISOString().slice(0, 19)}`, rpm_limit: 600 }),
  );
  return { key: key.key, email: DEMO_EMAIL };
}

/** Logs in to the console as a browser would (CSRF token from the form, cookies kept): the printed login works. */
async function consoleLoginWorks(origin: string, email: string): Promise<boolean> {
  const form = await fetch(`${origin}/login`, { headers: { accept: 'text/html' } });
  const cookie = form.headers
    .getSetCookie()
    .map((c) => c.split(';')[0])
    .join('; ');
  const csrf = /name="_csrf" value="([^"]+)"/.exec(await form.text())?.[1] ?? '';
  const res = await fetch(`${origin}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { accept: 'text/html', cookie, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ _csrf: csrf, email, password: DEMO_PASSWORD }),
  });
  return res.status === 303;
}

function start(script: string, env: NodeJS.ProcessEnv, role: string): ChildProcess {
  const child = spawn(process.execPath, [script], {
    cwd: ROOT,
    env: { ...env, EASTX_ROLE: role },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  child.on('exit', (code, signal) => {
    if (!stopping) {
      console.error(`demo: ${role} exited (${signal ?? code}); stopping`);
      void shutdown(1);
    }
  });
  return child;
}

let stopping = false;
const children: ChildProcess[] = [];
let mockServer: MockUpstream | undefined;
async function shutdown(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  for (const child of children) child.kill('SIGTERM');
  await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : undefined)));
  await mockServer?.close();
  process.exit(code);
}

async function main(): Promise<void> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NODE_ENV: process.env.NODE_ENV ?? 'development',
    ADMIN_TOKEN: process.env.ADMIN_TOKEN ?? `demo-admin-${randomBytes(12).toString('hex')}`,
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
  };
  const config = loadConfig(env);
  await migrateToLatest(config.databaseUrl);
  mockServer = await startMockUpstream({ port: Number(process.env.MOCK_PORT ?? 0) });

  const db = createDb(config.databaseUrl, 2);
  const redis = createRedis(config.redisUrl);
  const { key, email } = await seed(
    { db, redis, keys: new RedisKeys(config.redisPrefix), secrets: new SecretBox(config.appSecret) },
    mockServer,
  );
  await db.destroy();
  await redis.quit();

  children.push(start('dist/src/web.js', env, 'web'), start('dist/workers/worker.js', env, 'worker'));
  process.on('SIGINT', () => void shutdown(0));
  process.on('SIGTERM', () => void shutdown(0));

  const baseUrl = `http://localhost:${config.port}/v1`;
  for (let i = 0; ; i++) {
    if (
      await fetch(`http://127.0.0.1:${config.port}/healthz`).then(
        (r) => r.ok,
        () => false,
      )
    )
      break;
    if (i > 200) throw new Error('the web process did not come up');
    await sleep(100);
  }
  const quickstart = { model: 'claude-sonnet-4-6', messages: [{ role: 'user', content: 'Hello!' }] };
  const res = await fetch(`${baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(quickstart),
  });
  const answer = (await res.json()) as { choices?: Array<{ message: { content: string } }>; error?: unknown };
  const origin = `http://127.0.0.1:${config.port}`;
  const logins =
    (await consoleLoginWorks(origin, email)) && (await consoleLoginWorks(origin, OPERATOR_EMAIL)) ? 'both logins checked' : 'LOGIN FAILED';
  const proof = res.ok
    ? `HTTP 200, "${answer.choices?.[0]?.message.content}", cost $${res.headers.get('x-eastx-cost-usd')}`
    : `HTTP ${res.status} ${JSON.stringify(answer)}`;

  console.log(`
eastx demo is running (mock upstream at ${mockServer.url}). Ctrl-C stops it.

  base_url       ${baseUrl}
  api key        ${key}
  console        http://localhost:${config.port}/login  (${logins})
    customer     ${email} / ${DEMO_PASSWORD}
    operator     ${OPERATOR_EMAIL} / ${DEMO_PASSWORD}  (/admin, Bull Board at /admin/queues)
  admin token    ${env.ADMIN_TOKEN}  (admin API; also opens /admin/login)
  metrics        curl -H "Authorization: Bearer ${env.ADMIN_TOKEN}" http://localhost:${config.port}/metrics
  claude code    ANTHROPIC_BASE_URL=http://localhost:${config.port} ANTHROPIC_AUTH_TOKEN=${key} ANTHROPIC_MODEL=claude-sonnet-4-6 claude

Quickstart (${proof}):

  curl ${baseUrl}/chat/completions \\
    -H "Authorization: Bearer ${key}" \\
    -H "Content-Type: application/json" \\
    -d '${JSON.stringify(quickstart)}'
`);
}

main().catch((err) => {
  console.error('demo failed:', err instanceof Error ? err.message : err);
  void shutdown(1);
});
