import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import test from 'ava';
import { Queue } from 'bullmq';
import { sql } from 'kysely';
import { placeHold } from '../src/billing/holds.js';
import { costNano } from '../src/billing/money.js';
import { settle } from '../src/billing/settlement.js';
import { HoldSweeper } from '../src/billing/sweeper.js';
import { createDb, type Db } from '../src/db/index.js';
import { channelQueueName } from '../src/queue/jobs.js';
import { ChannelQueues } from '../src/queue/queues.js';
import { createRedis, type Redis, RedisKeys } from '../src/redis/index.js';
import { AdminClient, mockChannel } from './helpers/admin.js';
import { type Bed, startBed } from './helpers/bed.js';
import { costOf, nano } from './helpers/money.js';
import { until } from './helpers/wait.js';

// SPEC §3 under real concurrency: 2 web and 2 worker processes share one MariaDB and one Redis.
let bed: Bed;
let db: Db;
let redis: Redis;
let channelId: number;
const MODEL = 'bill/chat';
const PRICES = { input: 2, output: 8 };
const MAX_TOKENS = 20;
const run = promisify(execFile);

test.before(async () => {
  bed = await startBed('billing', { env: { HOLD_SWEEP_MS: '500', HOLD_MIN_AGE_MS: '5000' }, webs: 2, workers: 2 });
  const { admin, mock, env } = bed;
  mock.setDefaultBehavior({ latencyMs: 20 });
  const channel = await admin.channel('bill', 'openai', `${mock.url}/v1`);
  channelId = channel.id;
  await admin.token(channel.id, 'bill-token-a', 200);
  await admin.token(channel.id, 'bill-token-b', 200);
  await admin.model(MODEL, {
    channel_id: channel.id,
    upstream_model: 'up',
    input_price_per_1m: PRICES.input,
    output_price_per_1m: PRICES.output,
    max_output_tokens: 100,
  });
  db = createDb(env.DATABASE_URL, 4);
  redis = createRedis(env.REDIS_URL);
});

test.after.always(async () => {
  await bed?.stop();
  await db?.destroy();
  await redis?.quit();
});

const body = { model: MODEL, messages: [{ role: 'user', content: 'bill me' }], max_tokens: MAX_TOKENS };

function chat(url: string, key: string, payload: unknown = body) {
  return fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(payload),
  });
}

/** The hold one request places, read while the upstream hangs on it (the request is left hanging). */
async function measureHold(userId: number, key: string): Promise<bigint> {
  bed.mock.setDefaultBehavior({ hang: true });
  void chat(bed.gateway.urls[0], key).catch(() => undefined);
  await bed.mock.waitForRequests(bed.mock.requests.length + 1);
  const held = nano((await bed.admin.getUser(userId)).held_usd);
  bed.mock.setDefaultBehavior({ latencyMs: 20 });
  return held;
}

/** The user's balance and held amount once nothing is held, or as they stand after `withinMs`. */
async function waitForHolds(userId: number, withinMs = 10_000): Promise<{ balance: bigint; held: bigint }> {
  const user = await until(
    () => bed.admin.getUser(userId),
    (u) => u.held_usd === '0',
    withinMs,
  );
  return { balance: nano(user.balance_usd), held: nano(user.held_usd) };
}

async function ledgerSum(userId: number): Promise<bigint> {
  const { data } = await bed.admin.usage(`user_id=${userId}`);
  return data.reduce((sum, row) => sum + nano(row.amount_usd as string), 0n);
}

test.serial('the hold is the SPEC §3 worst case: estimated prompt × input price + max_tokens × output price', async (t) => {
  const user = await bed.admin.user('worst@example.com', '1');
  const key = await bed.admin.key(user.id);
  const held = await measureHold(user.id, key.key);
  const outputPart = costOf(PRICES, 0, MAX_TOKENS);
  t.true(held > outputPart, 'the prompt is part of the worst case');
  t.true(held < outputPart + costOf(PRICES, 100, 0), 'a short prompt is estimated as a few dozen tokens');
  const row = await db.selectFrom('holds').select('amount_nano').where('user_id', '=', user.id).executeTakeFirstOrThrow();
  t.is(BigInt(row.amount_nano), held);
});

test.serial('200 concurrent requests on 2 web processes against a balance that affords 50: never overdrawn, holds back to 0', async (t) => {
  // The hold of one request and the actual cost of one, then an account funded for exactly 50 holds.
  const probe = await bed.admin.user('probe@example.com', '1');
  const probeKey = await bed.admin.key(probe.id);
  const res = await chat(bed.gateway.urls[0], probeKey.key);
  t.is(res.status, 200);
  const usage = ((await res.json()) as { usage: { prompt_tokens: number; completion_tokens: number } }).usage;
  const actual = costOf(PRICES, usage.prompt_tokens, usage.completion_tokens);
  const hold = await measureHold(probe.id, probeKey.key);
  const user = await bed.admin.user('fifty@example.com');
  const key = await bed.admin.key(user.id, { rpm_limit: 100000 });
  const funded = hold * 50n;
  await bed.admin.call('POST', `/admin/api/users/${user.id}/credit`, { amount_usd: (Number(funded) / 1e9).toFixed(9) });
  const results = await Promise.all(
    Array.from({ length: 200 }, (_, i) =>
      chat(bed.gateway.urls[i % 2], key.key).then(async (r) => ({
        status: r.status,
        json: (await r.json()) as { error?: { code: string } },
      })),
    ),
  );
  const ok = results.filter((r) => r.status === 200).length;
  const refused = results.filter((r) => r.status === 402);
  t.is(ok + refused.length, 200, `statuses: ${[...new Set(results.map((r) => r.status))]}`);
  t.true(ok >= 50, `at least the 50 affordable requests succeed (got ${ok})`);
  t.true(refused.every((r) => r.json.error?.code === 'insufficient_balance'));

  const { balance, held } = await waitForHolds(user.id);
  t.is(held, 0n);
  t.true(balance >= 0n, `balance ${balance}`);
  t.true(funded - balance <= funded, 'total debited ≤ the balance');
  t.is(funded - balance, BigInt(ok) * actual, 'every success debited exactly its cost, once');
  t.is(await ledgerSum(user.id), balance, 'balance = sum of the ledger');
});

test.serial("200 concurrent requests against a key's spend cap: spent never exceeds the cap, 402 cap_reached", async (t) => {
  const user = await bed.admin.user('capped@example.com', '100');
  const key = await bed.admin.key(user.id, { rpm_limit: 100000, balance_cap_usd: '0.0005' });
  const results = await Promise.all(
    Array.from({ length: 200 }, (_, i) =>
      chat(bed.gateway.urls[i % 2], key.key).then(async (r) => ({
        status: r.status,
        json: (await r.json()) as { error?: { code: string } },
      })),
    ),
  );
  const ok = results.filter((r) => r.status === 200).length;
  t.true(ok > 0);
  t.true(results.every((r) => r.status === 200 || (r.status === 402 && r.json.error?.code === 'cap_reached')));
  await waitForHolds(user.id);
  const k = await bed.admin.getKey(key.id);
  t.true(nano(k.spent_usd) <= nano('0.0005'), `spent ${k.spent_usd} ≤ cap 0.0005`);
  t.is(k.held_usd, '0');
  const { balance } = await waitForHolds(user.id);
  t.is(nano('100') - balance, nano(k.spent_usd));
});

test.serial(
  'RPM 30 on 2 web processes, 100 requests in a burst: exactly 30 pass, the rest 429 with Retry-After and cost nothing',
  async (t) => {
    const user = await bed.admin.user('rpm@example.com', '10');
    const key = await bed.admin.key(user.id, { rpm_limit: 30 });
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => chat(bed.gateway.urls[i % 2], key.key)));
    const ok = results.filter((r) => r.status === 200);
    const limited = results.filter((r) => r.status === 429);
    t.is(ok.length, 30);
    t.is(limited.length, 70);
    for (const r of limited) {
      t.true(Number(r.headers.get('retry-after')) >= 1);
      t.is(r.headers.get('x-ratelimit-limit-requests'), '30');
      t.is(r.headers.get('x-ratelimit-remaining-requests'), '0');
      t.is(((await r.json()) as { error: { code: string; type: string } }).error.code, 'rate_limit_exceeded');
    }
    await Promise.all(ok.map((r) => r.arrayBuffer()));
    const { data } = await bed.admin.usage(`user_id=${user.id}`);
    t.is(data.filter((r) => r.kind === 'charge').length, 30, 'a 429 costs nothing');
    const models = await fetch(`${bed.gateway.urls[1]}/v1/models`, { headers: { authorization: `Bearer ${key.key}` } });
    t.is(models.status, 429, 'model listing counts toward the same window');
  },
);

test.serial(
  'RPM: requests refused before the RPM step are not counted, and a limit changed on web 1 governs the very next request to web 2',
  async (t) => {
    const user = await bed.admin.user('rpm-early@example.com', '10');
    const key = await bed.admin.key(user.id, { rpm_limit: 3 });
    const web2 = bed.gateway.urls[1];
    const remaining = (r: Response) => [r.headers.get('x-ratelimit-limit-requests'), r.headers.get('x-ratelimit-remaining-requests')];
    const ok = async (r: Response) => {
      t.is(r.status, 200);
      await r.arrayBuffer();
      return remaining(r);
    };
    t.deepEqual(await ok(await chat(web2, key.key)), ['3', '2'], 'web 2 now knows the key: its next takes go out with the key check');
    // 400 (body) and 404 (model): refused before the RPM step, none counted
    const refused = await Promise.all([
      ...Array.from({ length: 4 }, () => chat(web2, key.key, { ...body, messages: 'not a list' })),
      ...Array.from({ length: 4 }, () => chat(web2, key.key, { ...body, model: 'no/such-model' })),
    ]);
    t.deepEqual(
      refused.map((r) => r.status),
      [400, 400, 400, 400, 404, 404, 404, 404],
    );
    t.deepEqual(await ok(await chat(web2, key.key)), ['3', '1'], 'the eight refused requests left no count behind');

    // raised on web 1: web 2's take made with its cached limit (3) is taken back, the new limit counts
    await bed.admin.call('PATCH', `/admin/api/keys/${key.id}`, { rpm_limit: 10 });
    t.deepEqual(await ok(await chat(web2, key.key)), ['10', '7']);
    // lowered to the count already in the window: the take made with the cached 10 is taken back, the request is a 429
    await bed.admin.call('PATCH', `/admin/api/keys/${key.id}`, { rpm_limit: 3 });
    const limited = await chat(web2, key.key);
    t.is(limited.status, 429);
    t.deepEqual(remaining(limited), ['3', '0']);
    await bed.admin.call('PATCH', `/admin/api/keys/${key.id}`, { rpm_limit: 10 });
    t.deepEqual(await ok(await chat(web2, key.key)), ['10', '6'], 'the 429 and the taken-back take were not counted');

    // revoked on web 1: web 2's take made with the cached live key is taken back with the 401
    await bed.admin.call('DELETE', `/admin/api/keys/${key.id}`);
    t.is((await chat(web2, key.key)).status, 401);
    t.is(await redis.zcard(new RedisKeys(`{${bed.env.QUEUE_PREFIX}}`).rpm(key.id)), 4, 'four requests counted in all');
  },
);

test.serial(
  'RPM is exact under a burst of refused requests: beside 40 malformed ones, all 8 valid requests that fit the window pass',
  async (t) => {
    const user = await bed.admin.user('rpm-burst@example.com', '10');
    const key = await bed.admin.key(user.id, { rpm_limit: 9 });
    const web2 = bed.gateway.urls[1];
    t.is((await chat(web2, key.key)).status, 200, 'web 2 now holds the key as live');
    const malformed = Array.from({ length: 40 }, (_, i) =>
      i % 2 ? { ...body, messages: 'not a list' } : { ...body, model: 'no/such-model' },
    );
    // the malformed ones first, then the valid ones, all in flight together
    const sent = [...malformed, ...Array.from({ length: 8 }, () => body)].map((payload) => chat(web2, key.key, payload));
    const statuses = (await Promise.all(sent)).map((r) => r.status);
    t.deepEqual(statuses.slice(40), Array(8).fill(200), 'no valid request was refused for a malformed one');
    t.is(statuses.slice(0, 40).filter((s) => s === 400 || s === 404).length, 40);
    t.is(await redis.zcard(new RedisKeys(`{${bed.env.QUEUE_PREFIX}}`).rpm(key.id)), 9, 'nine requests counted, no more');
    t.is((await chat(web2, key.key)).status, 429, 'the window is full');
  },
);

test.serial(
  'RPM is exact right after a change: requests web 2 checked against its stale key or catalog and then refused never take a valid request’s place',
  async (t) => {
    const channel = await bed.admin.channel('stale', 'openai', `${bed.mock.url}/v1`);
    await bed.admin.token(channel.id, 'stale-token', 10);
    const staleModel = { channel_id: channel.id, upstream_model: 'up', input_price_per_1m: 1, output_price_per_1m: 1 };
    const user = await bed.admin.user('rpm-stale@example.com', '10');
    const [web1, web2] = bed.gateway.urls;
    const models = (url: string, key: string) => fetch(`${url}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
    const changes: Array<[string, (keyId: number) => Promise<unknown>, string]> = [
      ['allowed models narrowed', (id) => bed.admin.call('PATCH', `/admin/api/keys/${id}`, { allowed_models: [MODEL] }), 'stale/model'],
      ['model disabled', () => bed.admin.model('stale/model', { ...staleModel, status: 'disabled' }), 'stale/model'],
    ];
    for (const [what, change, refusedModel] of changes) {
      for (let round = 0; round < 6; round++) {
        await bed.admin.model('stale/model', staleModel);
        const key = await bed.admin.key(user.id, { rpm_limit: 5 });
        t.is((await models(web2, key.key)).status, 200, 'web 2 holds the key (and the catalog) as live');
        await change(key.id);
        // web 2 checks the burst against what it holds, which allows the model; the current key or catalog refuses it
        const refused = Array.from({ length: 60 }, () => chat(web2, key.key, { ...body, model: refusedModel }));
        const valid = Array.from({ length: 4 }, () => models(web1, key.key));
        const statuses = await Promise.all([...refused, ...valid].map(async (r) => (await r).status));
        t.true(
          statuses.slice(0, 60).every((s) => s === 403 || s === 404),
          `${what}: the burst is refused`,
        );
        t.deepEqual(statuses.slice(60), [200, 200, 200, 200], `${what}, round ${round + 1}: every valid request within the limit passed`);
        t.is(await redis.zcard(new RedisKeys(`{${bed.env.QUEUE_PREFIX}}`).rpm(key.id)), 5);
      }
    }
  },
);

test.serial(
  'a concurrency 429 is never counted, not even for a moment: under RPM 3 and 1 in flight, 8 at once get 1 answer and 7 concurrency 429s',
  async (t) => {
    const { model } = await mockChannel(bed.admin, bed.mock, 'one-at-a-time', { latencyMs: 500 });
    const user = await bed.admin.user('busy-key@example.com', '10');
    for (let round = 0; round < 3; round++) {
      const key = await bed.admin.key(user.id, { rpm_limit: 3, max_concurrent_requests: 1 });
      const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => chat(bed.gateway.urls[i % 2], key.key, { ...body, model })));
      const refused = answers.filter((r) => r.status === 429);
      t.is(answers.filter((r) => r.status === 200).length, 1);
      const messages = await Promise.all(refused.map(async (r) => ((await r.json()) as { error: { message: string } }).error.message));
      t.deepEqual(
        refused.map((r, i) => [r.headers.get('retry-after'), /max_concurrent_requests/.test(messages[i])]),
        Array(7).fill(['1', true]),
        `round ${round + 1}: every refusal is the concurrency one, none an RPM 429 caused by another's momentary count`,
      );
      await Promise.all(answers.filter((r) => r.status === 200).map((r) => r.arrayBuffer()));
      t.is(await redis.zcard(new RedisKeys(`{${bed.env.QUEUE_PREFIX}}`).rpm(key.id)), 1);
    }
  },
);

test.serial(
  'a key web 2 holds as live is checked before any answer: a change made on web 1 decides the very next request, whatever its body',
  async (t) => {
    const user = await bed.admin.user('claim@example.com', '10');
    const channel = await bed.admin.channel('claim', 'openai', `${bed.mock.url}/v1`);
    await bed.admin.token(channel.id, 'claim-token', 10);
    const otherModel = { channel_id: channel.id, upstream_model: 'up', input_price_per_1m: 1, output_price_per_1m: 1 };
    await bed.admin.model('claim/other', otherModel);
    const key = await bed.admin.key(user.id, { rpm_limit: 1000, allowed_models: [MODEL] });
    const web2 = bed.gateway.urls[1];
    const other = { ...body, model: 'claim/other' };
    const code = async (r: Response) => ((await r.json()) as { error: { code: string } }).error.code;
    t.is((await chat(web2, key.key)).status, 200);
    t.is(await code(await chat(web2, key.key, other)), 'model_not_allowed');

    // widened on web 1: web 2 refused the model by its cached list, then checks again with the new one
    await bed.admin.call('PATCH', `/admin/api/keys/${key.id}`, { allowed_models: [MODEL, 'claim/other'] });
    t.is((await chat(web2, key.key, other)).status, 200);
    // narrowed on web 1: web 2's cached list allows the model, the current one does not
    await bed.admin.call('PATCH', `/admin/api/keys/${key.id}`, { allowed_models: ['claim/other'] });
    t.is(await code(await chat(web2, key.key)), 'model_not_allowed');
    // a catalog change on web 1: web 2's cached catalog has the model, the current one does not
    t.is((await chat(web2, key.key, other)).status, 200);
    await bed.admin.model('claim/other', { ...otherModel, status: 'disabled' });
    t.is(await code(await chat(web2, key.key, other)), 'model_not_found');
    await bed.admin.model('claim/other', otherModel);
    t.is((await chat(web2, key.key, other)).status, 200);

    // disabled, then revoked: a bad body or an unknown model is answered as the key's error, which comes first
    await bed.admin.call('PATCH', `/admin/api/keys/${key.id}`, { disabled: true });
    t.is(await code(await chat(web2, key.key, { ...other, messages: 'not a list' })), 'disabled');
    await bed.admin.call('PATCH', `/admin/api/keys/${key.id}`, { disabled: false });
    t.is((await chat(web2, key.key, other)).status, 200);
    await bed.admin.call('DELETE', `/admin/api/keys/${key.id}`);
    t.is(await code(await chat(web2, key.key, { ...other, model: 'no/such-model' })), 'invalid_key');
    const counted = await redis.zcard(new RedisKeys(`{${bed.env.QUEUE_PREFIX}}`).rpm(key.id));
    t.is(counted, 5, 'the five requests that passed were counted, and only those');
  },
);

/**
 * A chat request whose body comes in slowly: its headers and first bytes now, the rest once `bodyHeld`
 * resolves. Resolves with the status and the error code, if any.
 */
function slowChat(url: string, key: string, bodyHeld: Promise<unknown>): Promise<{ status: number; code?: string }> {
  const payload = JSON.stringify(body);
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/v1/chat/completions',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, code: /"code":"([a-z_]+)"/.exec(text)?.[1] }));
      },
    );
    req.on('error', reject);
    req.write(payload.slice(0, 5));
    void bodyHeld.then(() => req.end(payload.slice(5)));
  });
}

test.serial(
  'a key changed while a request’s body was still coming in decides that request: revoked, expired, disabled; nothing counted',
  async (t) => {
    const user = await bed.admin.user('slow-body@example.com', '10');
    const [web1, web2] = bed.gateway.urls;
    const rpmKeys = new RedisKeys(`{${bed.env.QUEUE_PREFIX}}`);
    const cases: Array<[string, boolean, (keyId: number) => Promise<unknown>, string]> = [
      // web 2 never saw the key before the request (its guard checks it at once), or holds it as live
      ['revoked, key new to web 2', false, (id) => bed.admin.call('DELETE', `/admin/api/keys/${id}`), 'invalid_key'],
      ['revoked, key held by web 2', true, (id) => bed.admin.call('DELETE', `/admin/api/keys/${id}`), 'invalid_key'],
      ['disabled, key new to web 2', false, (id) => bed.admin.call('PATCH', `/admin/api/keys/${id}`, { disabled: true }), 'disabled'],
      ['expired meanwhile, key held by web 2', true, () => sleep(1_500), 'expired'],
    ];
    for (const [what, warm, change, code] of cases) {
      const expiresAt = code === 'expired' ? new Date(Date.now() + 1_000).toISOString() : null;
      const key = await bed.admin.key(user.id, { rpm_limit: 100, expires_at: expiresAt });
      t.is((await chat(warm ? web2 : web1, key.key)).status, 200);
      let release = () => {};
      const pending = slowChat(web2, key.key, new Promise<void>((resolve) => (release = resolve)));
      await sleep(200); // the headers are in, the guard has run
      await change(key.id);
      release();
      t.like(await pending, { status: code === 'invalid_key' ? 401 : 403, code }, what);
      t.is(await redis.zcard(rpmKeys.rpm(key.id)), 1, `${what}: only the first request was counted`);
    }
  },
);

test.serial('revoking through the admin API (web 1) takes effect on the very next request to web 2', async (t) => {
  const user = await bed.admin.user('revoke@example.com', '1');
  const key = await bed.admin.key(user.id);
  t.is((await chat(bed.gateway.urls[1], key.key)).status, 200);
  await new AdminClient(bed.gateway.urls[0], bed.env.ADMIN_TOKEN).call('DELETE', `/admin/api/keys/${key.id}`);
  const res = await chat(bed.gateway.urls[1], key.key);
  t.is(res.status, 401);
  t.is(((await res.json()) as { error: { code: string } }).error.code, 'invalid_key');
  const other = await bed.admin.key(user.id);
  t.is((await chat(bed.gateway.urls[1], other.key)).status, 200);
  await bed.admin.call('PATCH', `/admin/api/keys/${other.id}`, { disabled: true });
  t.is((await chat(bed.gateway.urls[1], other.key)).status, 403);
});

test.serial('a settlement applied twice (a re-delivered job) changes the balance once', async (t) => {
  const user = await bed.admin.user('twice@example.com', '1');
  const key = await bed.admin.key(user.id);
  const prices = { inputMicro: 2_000_000n, outputMicro: 8_000_000n, imageNano: 0n };
  const usage = { promptTokens: 100, completionTokens: 50, images: 0 };
  const holdNano = 1_000_000n;
  t.true(await placeHold(db, { requestId: 'req_twice', userId: user.id, keyId: key.id, channelId, amountNano: holdNano }));
  const s = { requestId: 'req_twice', userId: user.id, keyId: key.id, model: MODEL, prices, usage, holdNano, estimated: false };
  const [first, second] = await Promise.all([settle(db, s), settle(db, s)]);
  t.is([first.applied, second.applied].filter(Boolean).length, 1);
  const third = await settle(db, s);
  t.false(third.applied);
  const expected = costNano(prices, usage);
  const after = await bed.admin.getUser(user.id);
  t.is(nano('1') - nano(after.balance_usd), expected);
  t.is(after.held_usd, '0');
  const rows = (await bed.admin.usage(`user_id=${user.id}`)).data.filter((r) => r.request_id === 'req_twice');
  t.is(rows.length, 1);
});

test.serial('the sweeper releases holds whose job is gone or finished, and keeps those of live jobs', async (t) => {
  const user = await bed.admin.user('sweep@example.com', '1');
  const key = await bed.admin.key(user.id);
  const queue = new Queue(channelQueueName(9999), { connection: redis, prefix: `{${bed.env.QUEUE_PREFIX}}` });
  const hold = (requestId: string) => placeHold(db, { requestId, userId: user.id, keyId: key.id, channelId: 9999, amountNano: 1000n });
  await hold('req_no_job');
  await hold('req_waiting');
  await queue.add('chat test', {}, { jobId: 'req_waiting' });
  await hold('req_failed');
  await queue.add('chat test', {}, { jobId: 'req_failed' });
  await queue.getJob('req_failed').then((job) => job!.remove());
  await sql`UPDATE holds SET created_at = NOW(3) - INTERVAL 5 SECOND`.execute(db);
  await hold('req_young');
  const queues = new ChannelQueues(redis, `{${bed.env.QUEUE_PREFIX}}`);
  const keys = new RedisKeys(`{${bed.env.QUEUE_PREFIX}}`);
  const jobAlive = (channelId: number, requestId: string) => queues.isLive(channelId, requestId);
  const sweeper = new HoldSweeper(db, redis, keys, jobAlive, { intervalMs: 60_000, minAgeMs: 2_000, maxAgeMs: 60_000 });
  // (the gateway's own workers sweep too, every 500 ms: assert the outcome, not who got there first)
  await sweeper.sweep();
  const left = (await db.selectFrom('holds').select('request_id').where('user_id', '=', user.id).execute()).map((r) => r.request_id).sort();
  t.deepEqual(left, ['req_waiting', 'req_young']);
  t.is(nano((await bed.admin.getUser(user.id)).held_usd), 2000n);
  const old = new HoldSweeper(db, redis, keys, jobAlive, { intervalMs: 60_000, minAgeMs: 0, maxAgeMs: 1 });
  await old.sweep();
  t.is((await bed.admin.getUser(user.id)).held_usd, '0', 'past the maximum age every hold goes, live job or not');
  await queues.close();
  await queue.close();
});

test.serial('a running worker process sweeps a hold whose request died before its job was enqueued', async (t) => {
  const user = await bed.admin.user('orphan@example.com', '1');
  const key = await bed.admin.key(user.id);
  // what a web process leaves behind when it is killed between placing the hold and enqueueing the job
  t.true(await placeHold(db, { requestId: 'req_orphaned_by_a_dead_web', userId: user.id, keyId: key.id, channelId, amountNano: 5_000n }));
  t.is((await bed.admin.getUser(user.id)).held_usd, '0.000005');
  const released = await waitForHolds(user.id, 20_000);
  t.is(released.held, 0n, 'released by the sweeper (HOLD_MIN_AGE_MS 5 s + HOLD_SWEEP_MS 0.5 s)');
  t.is(released.balance, nano('1'), 'and nothing charged');
});

test.serial('the workers keep the hold of a request a worker that is there still runs, though BullMQ no longer has its job', async (t) => {
  const user = await bed.admin.user('removed-job@example.com', '1');
  const key = await bed.admin.key(user.id);
  const keys = new RedisKeys(`{${bed.env.QUEUE_PREFIX}}`);
  const requestId = 'req_job_removed_while_running';
  // what an operator leaves behind who removes a running job in Bull Board: the run goes on, its claim with it
  const runner = createRedis(bed.env.REDIS_URL);
  t.teardown(() => runner.disconnect());
  await runner.subscribe(keys.workerPresence('stand-in'));
  await redis.set(keys.runClaim(requestId), 'stand-in', 'PX', 60_000);
  t.true(await placeHold(db, { requestId, userId: user.id, keyId: key.id, channelId, amountNano: 5_000n }));
  await new Promise((r) => setTimeout(r, 8_000));
  t.is((await bed.admin.getUser(user.id)).held_usd, '0.000005', 'kept past HOLD_MIN_AGE_MS (5 s) while its runner is there');
  runner.disconnect();
  const released = await waitForHolds(user.id);
  t.is(released.held, 0n, 'released once its runner is gone');
  t.is(released.balance, nano('1'));
});

test.serial(
  'a cap lowered below what its key has spent stops the key (402 cap_reached); the audit does not call that a fault',
  async (t) => {
    const user = await bed.admin.user('lowered-cap@example.com', '1');
    const key = await bed.admin.key(user.id, { balance_cap_usd: '1' });
    t.is((await chat(bed.gateway.urls[0], key.key)).status, 200);
    await waitForHolds(user.id);
    t.true(nano((await bed.admin.getKey(key.id)).spent_usd) > nano('0.000001'));
    const lowered = await bed.admin.call('PATCH', `/admin/api/keys/${key.id}`, { balance_cap_usd: '0.000001' });
    t.is(lowered.balance_cap_usd, '0.000001');
    for (const url of bed.gateway.urls) {
      const refused = await chat(url, key.key);
      t.is(refused.status, 402);
      t.is(((await refused.json()) as { error: { code: string } }).error.code, 'cap_reached');
    }
    // the audit that follows checks this key too
  },
);

test.serial('npm run admin -- audit: passes on a consistent ledger and reports a tampered balance', async (t) => {
  const cli = (args: string[]) => run(process.execPath, ['dist/src/cli.js', ...args], { env: { ...process.env, ...bed.env } });
  await waitForHolds((await bed.admin.user('audit@example.com', '1')).id);
  const clean = JSON.parse((await cli(['audit'])).stdout) as { findings: unknown[]; accounts: number };
  t.deepEqual(clean.findings, []);
  t.true(clean.accounts > 5);
  await sql`UPDATE users SET balance_nano = balance_nano + 7 WHERE email = 'audit@example.com'`.execute(db);
  const failed = await cli(['audit']).then(
    () => undefined,
    (err: { code: number; stderr: string }) => err,
  );
  t.is(failed?.code, 1);
  t.regex(failed!.stderr, /balance = sum of ledger/);
  await sql`UPDATE users SET balance_nano = balance_nano - 7 WHERE email = 'audit@example.com'`.execute(db);
});
