import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { createDb, type Db } from '../src/db/index.js';
import { createRedis, type Redis, RedisKeys } from '../src/redis/index.js';
import { SecretBox } from '../src/upstream/secrets.js';
import { freshEnvironment } from './helpers/env.js';

const root = fileURLToPath(new URL('..', import.meta.url));
let env: Record<string, string>;
let db: Db;
let redis: Redis;
let keys: RedisKeys;
let appSecret: string;

test.before(async () => {
  const fresh = await freshEnvironment('admin_cli');
  env = fresh.env;
  appSecret = fresh.config.appSecret;
  db = createDb(fresh.config.databaseUrl, 2);
  redis = createRedis(fresh.config.redisUrl);
  keys = new RedisKeys(fresh.config.redisPrefix);
});

test.after.always(async () => {
  await db?.destroy();
  await redis?.quit();
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  json: any;
}

/** `node --import=tsx src/cli.ts …` with the test environment, as an operator would run it. */
const cli = (...args: string[]): Promise<Run> => cliWith({}, ...args);

/** The same, with `overrides` over the test environment. */
function cliWith(overrides: Record<string, string>, ...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import=tsx', 'src/cli.ts', ...args],
      { cwd: root, env: { ...process.env, ...env, ...overrides }, timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        let json: any;
        try {
          json = JSON.parse(stdout);
        } catch {
          json = undefined;
        }
        resolve({ code, stdout, stderr, json });
      },
    );
  });
}

async function ok(t: import('ava').ExecutionContext, ...args: string[]) {
  const run = await cli(...args);
  t.is(run.code, 0, `${args.join(' ')}: ${run.stderr}`);
  t.truthy(run.json, run.stdout);
  return run.json;
}

// Each run starts a Node process with tsx (about a second of CPU): serial, so they don't crowd the other test files.
test.serial('help lists the commands; an unknown command fails', async (t) => {
  const help = await cli('help');
  t.is(help.code, 0);
  for (const name of [
    'migrate',
    'create-channel',
    'add-token',
    'set-token',
    'put-model',
    'create-user',
    'credit',
    'create-key',
    'set-key',
    'revoke-key',
    'codes',
    'usage',
    'show-user',
    'show-key',
  ]) {
    t.true(help.stdout.includes(`  ${name}`), name);
  }
  const unknown = await cli('frobnicate');
  t.is(unknown.code, 1);
  t.regex(unknown.stderr, /unknown command: frobnicate/);
});

test.serial('migrate applies nothing on a migrated database and prints JSON', async (t) => {
  t.deepEqual(await ok(t, 'migrate'), { applied: [] });
});

test.serial('users and money: create-user, credit, adjust, show-user, usage; failures exit 1 with the message', async (t) => {
  const user = await ok(t, 'create-user', '--email', 'cli-user@example.test', '--password', 'a long password');
  t.like(user, { email: 'cli-user@example.test', balance_usd: '0' });
  t.deepEqual(await ok(t, 'credit', String(user.id), '2.5', '--note', 'from the cli'), { balance_usd: '2.5' });
  t.deepEqual(await ok(t, 'adjust', String(user.id), '-0.5', '--note', 'correction'), { balance_usd: '2' });
  t.like(await ok(t, 'show-user', String(user.id)), { id: user.id, balance_usd: '2', held_usd: '0' });
  const usage = await ok(t, 'usage', '--user', String(user.id));
  t.deepEqual(
    usage.data.map((r: { kind: string; amount_usd: string; note: string }) => [r.kind, r.amount_usd, r.note]),
    [
      ['adjustment', '-0.5', 'correction'],
      ['credit', '2.5', 'from the cli'],
    ],
  );

  const duplicate = await cli('create-user', '--email', 'cli-user@example.test');
  t.is(duplicate.code, 1);
  t.regex(duplicate.stderr, /email: .*already exists/);
  const negative = await cli('credit', String(user.id), '-1');
  t.is(negative.code, 1);
  t.regex(negative.stderr, /amount_usd: must be positive/);
  const missing = await cli('show-user', '999999');
  t.is(missing.code, 1);
  t.regex(missing.stderr, /no user with id 999999/);
  const usageMissingArg = await cli('credit', String(user.id));
  t.is(usageMissingArg.code, 1);
  t.regex(usageMissingArg.stderr, /usage: credit/);
});

test.serial('catalog: create-channel, add-token (secret never printed), set-token, put-model', async (t) => {
  const channel = await ok(
    t,
    'create-channel',
    '--name',
    'cli-chan',
    '--type',
    'dashscope',
    '--base-url',
    'https://dashscope.aliyuncs.com',
  );
  t.like(channel, { name: 'cli-chan', type: 'dashscope' });
  const secret = 'sk-dashscope-cli-secret-9876';
  const added = await cli('add-token', String(channel.id), '--secret', secret, '--max-concurrency', '2', '--name', 'primary');
  t.is(added.code, 0, added.stderr);
  t.false(added.stdout.includes(secret));
  t.like(added.json, { channel_id: channel.id, max_concurrency: 2, name: 'primary', secret_hint: '…9876' });
  const row = await db.selectFrom('upstream_tokens').select('secret_enc').where('id', '=', added.json.id).executeTakeFirstOrThrow();
  t.is(new SecretBox(appSecret).open(row.secret_enc), secret);
  t.like(await ok(t, 'set-token', String(added.json.id), '--status', 'disabled'), { status: 'disabled', max_concurrency: 2 });

  const model = await ok(
    t,
    'put-model',
    'qwen/qwen-max.latest',
    '--json',
    JSON.stringify({
      display_name: 'Qwen Max',
      owned_by: 'alibaba',
      modality: 'chat',
      status: 'active',
      channel_id: channel.id,
      upstream_model: 'qwen-max',
      input_price_per_1m: '2.4',
      output_price_per_1m: 9.6,
    }),
  );
  t.like(model, {
    id: 'qwen/qwen-max.latest',
    input_price_per_1m: '2.4',
    output_price_per_1m: '9.6',
    cache_read_price_per_1m: '2.4',
    cache_write_price_per_1m: '2.4',
    max_output_tokens: 4096,
  });
  const cached = await ok(
    t,
    'put-model',
    'qwen/qwen-max.cached',
    '--json',
    JSON.stringify({
      display_name: 'Qwen Max (cache prices)',
      owned_by: 'alibaba',
      modality: 'chat',
      status: 'active',
      channel_id: channel.id,
      upstream_model: 'qwen-max',
      input_price_per_1m: '2.4',
      output_price_per_1m: 9.6,
      cache_read_price_per_1m: '0.24',
      cache_write_price_per_1m: 3,
    }),
  );
  t.like(cached, { cache_read_price_per_1m: '0.24', cache_write_price_per_1m: '3' });
  const prices = await db
    .selectFrom('models')
    .select(['cache_read_micro', 'cache_write_micro'])
    .where('id', '=', 'qwen/qwen-max.cached')
    .executeTakeFirstOrThrow();
  t.deepEqual([String(prices.cache_read_micro), String(prices.cache_write_micro)], ['240000', '3000000']);
  const badModel = await cli(
    'put-model',
    'qwen/other',
    '--json',
    JSON.stringify({
      display_name: 'x',
      owned_by: 'y',
      modality: 'chat',
      status: 'active',
      channel_id: 999999,
      upstream_model: 'z',
    }),
  );
  t.is(badModel.code, 1);
  t.regex(badModel.stderr, /channel_id: no channel/);
});

test.serial('keys: create-key prints the key once, show-key/set-key/revoke-key never do, and bump the key version', async (t) => {
  const user = await ok(t, 'create-user', '--email', 'cli-keys@example.test');
  const created = await ok(t, 'create-key', String(user.id), '--name', 'cli', '--rpm', '30', '--cap', '1.25', '--expires', '2999-12-31');
  t.regex(created.key, /^sk-eastx-/);
  t.like(created, { name: 'cli', rpm_limit: 30, balance_cap_usd: '1.25', status: 'active', expires_at: '2999-12-31T00:00:00.000Z' });
  const secretPart = created.key.slice('sk-eastx-'.length);

  const shown = await cli('show-key', String(created.id));
  t.is(shown.code, 0);
  t.false(shown.stdout.includes(secretPart));
  t.like(shown.json, { id: created.id, rpm_limit: 30 });

  const hash = (await db.selectFrom('api_keys').select('key_hash').where('id', '=', created.id).executeTakeFirstOrThrow()).key_hash;
  const version = await redis.get(keys.keyVersion(hash));
  t.truthy(version);
  const changed = await ok(t, 'set-key', String(created.id), '--disable', '--rpm', '10', '--cap', 'none', '--expires', 'none');
  t.like(changed, { status: 'disabled', rpm_limit: 10, balance_cap_usd: null, expires_at: null });
  t.not(await redis.get(keys.keyVersion(hash)), version);
  // with Redis unreachable nothing changes: a key revoked in MySQL alone would keep working where it is cached
  const offline = await cliWith({ REDIS_URL: 'redis://127.0.0.1:1' }, 'revoke-key', String(created.id));
  t.is(offline.code, 1);
  t.regex(offline.stderr, /^Redis did not answer at REDIS_URL$/m);
  t.is((await db.selectFrom('api_keys').select('status').where('id', '=', created.id).executeTakeFirstOrThrow()).status, 'disabled');
  // an empty --allowed-models (an unset shell variable) is refused, not taken as `none`
  for (const empty of ['', ',']) {
    const refused = await cli('set-key', String(created.id), '--allowed-models', empty);
    t.is(refused.code, 1, JSON.stringify(empty));
    t.regex(refused.stderr, /--allowed-models: give model ids/);
  }
  const revoked = await cli('revoke-key', String(created.id));
  t.is(revoked.code, 0);
  t.false(revoked.stdout.includes(secretPart));
  t.like(revoked.json, { status: 'revoked' });
});

test.serial(
  'catalog changes with Redis unreachable change nothing: the processes caching the catalog could not hear of them',
  async (t) => {
    const channel = await ok(t, 'create-channel', '--name', 'offline-a', '--type', 'openai', '--base-url', 'https://a.example/v1');
    const offline = { REDIS_URL: 'redis://127.0.0.1:1' };
    const model = { display_name: 'Offline', owned_by: 'eastx', modality: 'chat', status: 'active', input_price_per_1m: 1 };
    const attempts = [
      ['create-channel', '--name', 'offline-b', '--type', 'openai', '--base-url', 'https://b.example/v1'],
      ['add-token', String(channel.id), '--secret', 'sk-offline-1234'],
      ['put-model', 'cli/offline', '--json', JSON.stringify({ ...model, channel_id: channel.id, upstream_model: 'gpt-4o' })],
    ];
    for (const args of attempts) {
      const run = await cliWith(offline, ...args);
      t.is(run.code, 1, args[0]);
      t.regex(run.stderr, /^Redis did not answer at REDIS_URL$/m);
    }
    t.is((await db.selectFrom('channels').select('id').where('name', '=', 'offline-b').execute()).length, 0);
    t.is((await db.selectFrom('upstream_tokens').select('id').where('channel_id', '=', channel.id).execute()).length, 0);
    t.is((await db.selectFrom('models').select('id').where('id', '=', 'cli/offline').execute()).length, 0);
    const version = await redis.get(keys.catalogVersion());
    await ok(t, 'add-token', String(channel.id), '--secret', 'sk-offline-1234');
    t.not(await redis.get(keys.catalogVersion()), version, 'with Redis there, the change is made and announced');
  },
);

test.serial('routes: put-model with routes, set-routes keeps the rest, list-models shows each route with its state', async (t) => {
  const a = await ok(t, 'create-channel', '--name', 'route-a', '--type', 'openai', '--base-url', 'https://a.example/v1');
  const b = await ok(t, 'create-channel', '--name', 'route-b', '--type', 'anthropic', '--base-url', 'https://b.example');
  await ok(t, 'add-token', String(a.id), '--secret', 'sk-route-a-1234');
  const body = {
    display_name: 'Routed',
    owned_by: 'eastx',
    modality: 'chat',
    status: 'active',
    input_price_per_1m: 1,
    routes: [
      { channel_id: a.id, upstream_model: 'gpt-4o', weight: 3 },
      { channel_id: b.id, upstream_model: 'claude-x', priority: 5 },
    ],
  };
  const put = await ok(t, 'put-model', 'cli/routed', '--json', JSON.stringify(body));
  t.like(put, { channel_id: b.id, upstream_model: 'claude-x', input_price_per_1m: '1' });
  t.deepEqual(
    put.routes.map((r: Record<string, unknown>) => [r.channel_id, r.upstream_model, r.priority, r.weight, r.state]),
    [
      [b.id, 'claude-x', 5, 1, 'disabled'],
      [a.id, 'gpt-4o', 0, 3, 'healthy'],
    ],
    'in trying order, each with its state (channel b has no token)',
  );
  const set = await ok(t, 'set-routes', 'cli/routed', '--json', JSON.stringify([{ channel_id: a.id, upstream_model: 'gpt-4o-mini' }]));
  t.like(set, { display_name: 'Routed', input_price_per_1m: '1', channel_id: a.id, upstream_model: 'gpt-4o-mini' });
  t.is(set.routes.length, 1);
  const listed = await ok(t, 'list-models');
  t.like(listed.data.find((m: { id: string }) => m.id === 'cli/routed').routes[0], {
    channel_id: a.id,
    priority: 0,
    weight: 1,
    state: 'healthy',
  });

  const dup = await cli('set-routes', 'cli/routed', '--json', JSON.stringify([body.routes[0], body.routes[0]]));
  t.is(dup.code, 1);
  t.regex(dup.stderr, /routes\.1: repeats the route/);
  const missing = await cli('set-routes', 'cli/nope', '--json', '[]');
  t.is(missing.code, 1);
  t.regex(missing.stderr, /no model with id cli\/nope/);
});

test.serial('keys: --allowed-models and --max-concurrent at creation and later; none lifts them', async (t) => {
  const user = await ok(t, 'create-user', '--email', 'cli-limits@example.test');
  const created = await ok(t, 'create-key', String(user.id), '--allowed-models', 'gpt-4o*, claude-sonnet-4-6', '--max-concurrent', '4');
  t.like(created, { max_concurrent_requests: 4 });
  t.deepEqual(created.allowed_models, ['gpt-4o*', 'claude-sonnet-4-6']);
  const lifted = await ok(t, 'set-key', String(created.id), '--allowed-models', 'none', '--max-concurrent', 'none');
  t.like(lifted, { allowed_models: null, max_concurrent_requests: null });
  const bad = await cli('set-key', String(created.id), '--allowed-models', 'g*pt');
  t.is(bad.code, 1);
  t.regex(bad.stderr, /allowed_models\.0: must be a model id/);
  const zero = await cli('set-key', String(created.id), '--max-concurrent', '0');
  t.is(zero.code, 1);
  t.regex(zero.stderr, /max_concurrent_requests: must be at least 1/);
});

test.serial('codes: printed once, redeemable once', async (t) => {
  const { codes } = await ok(t, 'codes', '--amount', '3', '--count', '2');
  t.is(codes.length, 2);
  const user = await ok(t, 'create-user', '--email', 'cli-codes@example.test');
  t.deepEqual(await ok(t, 'redeem', String(user.id), codes[0]), { amount_usd: '3', balance_usd: '3' });
  const again = await cli('redeem', String(user.id), codes[0]);
  t.is(again.code, 1);
  t.regex(again.stderr, /already redeemed/);
});
