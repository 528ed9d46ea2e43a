import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import type { UpstreamToken } from '../src/catalog/catalog.js';
import { createRedis, type Redis, RedisKeys } from '../src/redis/index.js';
import { parseRetryAfter } from '../src/upstream/errors.js';
import { clearCooldown } from '../src/upstream/health.js';
import { TokenPool } from '../src/upstream/pool.js';
import { type Bed, startBed } from './helpers/bed.js';
import { newCustomer, postJson } from './helpers/customer.js';
import { emptyRedisPrefix, REDIS_URL } from './helpers/env.js';
import { mostUntil, untilTrue } from './helpers/wait.js';

// Part 1: the pool itself against a real Redis (as several worker processes share it).
// Part 2: the whole gateway with 3 worker processes against the mock upstream.

let redis: Redis;
let keys: RedisKeys;
let bed: Bed;
let apiKey: string;

const token = (id: number, maxConcurrency: number, status: 'active' | 'disabled' = 'active'): UpstreamToken => ({
  id,
  channelId: 1,
  name: `t${id}`,
  maxConcurrency,
  status,
  secretEnc: '',
});
const never = new AbortController().signal;

test.before(async () => {
  redis = createRedis(REDIS_URL);
  keys = new RedisKeys(`{eastx-test-pool-unit-${randomBytes(4).toString('hex')}}`);
  bed = await startBed('pool', { workers: 3 });
  ({ apiKey } = await newCustomer(bed.admin, 'pool@example.com', '50', { rpm_limit: 10_000 }));
});

test.after.always(async () => {
  await bed?.stop();
  if (keys) await emptyRedisPrefix(keys.prefix);
  redis?.disconnect();
});

test('a token never holds more leases than its max_concurrency, whoever asks', async (t) => {
  const secondProcess = createRedis(REDIS_URL);
  t.teardown(() => secondProcess.disconnect());
  const pools = [new TokenPool(redis, keys), new TokenPool(secondProcess, keys)];
  const tokens = [token(11, 3)];
  const results = await Promise.all(
    Array.from({ length: 10 }, (_, i) => {
      const waitLonger = new AbortController();
      setTimeout(() => waitLonger.abort(new Error('still waiting')), 300);
      return pools[i % 2].acquire(tokens, `job-${i}`, waitLonger.signal).catch(() => 'waited' as const);
    }),
  );
  t.is(results.filter((r) => r !== 'waited').length, 3, 'three leased, seven kept waiting instead of failing');
  t.is(results.filter((r) => r === 'waited').length, 7);
  t.is(await pools[0].liveLeases(11), 3);
});

test('a waiting job gets the lease as soon as one is released', async (t) => {
  const pool = new TokenPool(redis, keys);
  const tokens = [token(12, 1)];
  const first = await pool.acquire(tokens, 'first', never);
  t.is(first.kind, 'leased');
  const second = pool.acquire(tokens, 'second', never);
  await sleep(100);
  t.is(await pool.liveLeases(12), 1);
  if (first.kind === 'leased') await first.lease.release('ok');
  t.is((await second).kind, 'leased');
  t.is(await pool.liveLeases(12), 1);
});

test('the lease of a holder that stops renewing (it died) expires after leaseMs', async (t) => {
  const pool = new TokenPool(redis, keys, { leaseMs: 300 });
  const tokens = [token(13, 1)];
  const waited = Date.now();
  // what a holder that died right after leasing leaves behind (on Redis's clock, as the scripts use)
  await redis.eval(
    `local t = redis.call('TIME') redis.call('ZADD', KEYS[1], t[1] * 1000 + math.floor(t[2] / 1000) + 300, 'dead-job')`,
    1,
    keys.leases(13),
  );
  t.is(await pool.liveLeases(13), 1);
  const next = await pool.acquire(tokens, 'next-job', never);
  t.is(next.kind, 'leased');
  t.true(Date.now() - waited >= 200, 'the dead lease blocked the token until it expired');
});

test('renewal keeps a lease alive past leaseMs while its call runs', async (t) => {
  const pool = new TokenPool(redis, keys, { leaseMs: 300 });
  const tokens = [token(14, 1)];
  const held = await pool.acquire(tokens, 'long-call', never);
  await sleep(900);
  t.is(await pool.liveLeases(14), 1);
  const other = new AbortController();
  setTimeout(() => other.abort(new Error('stop')), 200);
  await t.throwsAsync(pool.acquire(tokens, 'other', other.signal));
  if (held.kind === 'leased') await held.lease.release('ok');
  t.is(await pool.liveLeases(14), 0);
});

test('a renewal counts its call again when its lease lapsed (its holder stalled) and the token has room', async (t) => {
  const pool = new TokenPool(redis, keys, { leaseMs: 300 });
  const tokens = [token(15, 2)];
  const held = await pool.acquire(tokens, 'stalled-with-room', never);
  if (held.kind !== 'leased') return t.fail(held.kind);
  // what the pool does to a lease not renewed in time
  await redis.zrem(keys.leases(15), 'stalled-with-room');
  t.true(await untilTrue(async () => (await pool.liveLeases(15)) === 1, 2_000, 20), 'the running call is counted again');
  t.false(held.lease.lost.aborted);
  await held.lease.release('ok');
  t.is(await pool.liveLeases(15), 0);
});

test('a lapsed lease is counted against the limit as it is now: lowered while its holder stalled, the call stops', async (t) => {
  let limit = 2;
  const pool = new TokenPool(redis, keys, { leaseMs: 300 }, () => limit);
  const tokens = [token(17, 2)];
  const held = await pool.acquire(tokens, 'stalled-limit-lowered', never);
  if (held.kind !== 'leased') return t.fail(held.kind);
  await redis.zrem(keys.leases(17), 'stalled-limit-lowered');
  limit = 1;
  const newcomer = await new TokenPool(redis, keys, { leaseMs: 300 }).acquire([token(17, 1)], 'newcomer-17', never);
  t.is(newcomer.kind, 'leased');
  t.true(await untilTrue(() => held.lease.lost.aborted, 2_000, 20), 'one call in flight already fills the lowered limit');
  t.is(await pool.liveLeases(17), 1);
  await held.lease.release('neutral');
  if (newcomer.kind === 'leased') await newcomer.lease.release('ok');
});

test('a lease that lapsed while others filled its token tells its holder to stop the call', async (t) => {
  const pool = new TokenPool(redis, keys, { leaseMs: 300 });
  const tokens = [token(16, 1)];
  const held = await pool.acquire(tokens, 'stalled-when-full', never);
  if (held.kind !== 'leased') return t.fail(held.kind);
  await redis.zrem(keys.leases(16), 'stalled-when-full');
  const newcomer = await new TokenPool(redis, keys, { leaseMs: 300 }).acquire(tokens, 'newcomer', never);
  t.is(newcomer.kind, 'leased');
  t.true(await untilTrue(() => held.lease.lost.aborted, 2_000, 20), 'the holder is told its call must stop');
  t.is(await pool.liveLeases(16), 1, 'the token counts only the newcomer');
  await held.lease.release('neutral');
  t.is(await pool.liveLeases(16), 1);
  if (newcomer.kind === 'leased') await newcomer.lease.release('ok');
});

test('the least loaded token is chosen; cooling and disabled tokens are skipped', async (t) => {
  const pool = new TokenPool(redis, keys);
  const tokens = [token(21, 4), token(22, 4), token(23, 4, 'disabled')];
  const picked = new Map<number, number>();
  for (let i = 0; i < 8; i++) {
    const got = await pool.acquire(tokens, `spread-${i}`, never);
    if (got.kind === 'leased') picked.set(got.lease.token.id, (picked.get(got.lease.token.id) ?? 0) + 1);
  }
  t.deepEqual(Object.fromEntries(picked), { 21: 4, 22: 4 });
  const cooling = [token(24, 4), token(25, 4)];
  await redis.set(keys.cooldown(24), 'ratelimited', 'PX', 5000);
  for (let i = 0; i < 3; i++) {
    const got = await pool.acquire(cooling, `cool-${i}`, never);
    t.is(got.kind === 'leased' && got.lease.token.id, 25);
  }
});

test('cooldowns: 429 with Retry-After, exponential backoff without, 5xx after 3 in a row; all cooling → retry time', async (t) => {
  const pool = new TokenPool(redis, keys, { baseBackoffMs: 1000, maxBackoffMs: 4000 });
  const tokens = [token(31, 4)];
  const lease = async (id: string) => {
    const got = await pool.acquire(tokens, id, never);
    if (got.kind !== 'leased') throw new Error(`not leased: ${got.kind}`);
    return got.lease;
  };
  t.is(await (await lease('a')).release('ratelimited', 2500), 2500, 'the upstream Retry-After is the cooldown');
  const cooling = await pool.acquire(tokens, 'b', never);
  t.is(cooling.kind, 'cooling');
  t.true(cooling.kind === 'cooling' && cooling.retryAfterMs > 2000 && cooling.retryAfterMs <= 2500);
  const availability = await pool.availability(tokens);
  t.false(availability.usable);
  t.true(availability.retryAfterMs! > 2000 && availability.retryAfterMs! <= 2500);
  await redis.del(keys.cooldown(31));
  t.is(await (await lease('c')).release('ratelimited'), 1000, 'no Retry-After: backoff level 1');
  await redis.del(keys.cooldown(31));
  t.is(await (await lease('d')).release('ratelimited'), 2000, 'level 2 doubles');
  await redis.del(keys.cooldown(31));
  t.is(await (await lease('e')).release('ratelimited'), 4000);
  await redis.del(keys.cooldown(31));
  t.is(await (await lease('f')).release('ratelimited'), 4000, 'capped at maxBackoffMs');
  await redis.del(keys.cooldown(31));
  t.is(await (await lease('g')).release('ok'), 0, 'a success resets the backoff');

  t.is(await (await lease('h')).release('fail'), 0);
  t.is(await (await lease('i')).release('fail'), 0);
  t.is(await (await lease('j')).release('ok'), 0, 'a success in between breaks the row');
  t.is(await (await lease('k')).release('fail'), 0);
  t.is(await (await lease('l')).release('neutral'), 0, 'a cancelled call says nothing about the token');
  t.is(await (await lease('m')).release('fail'), 0);
  t.is(await (await lease('n')).release('fail'), 1000, 'the third failure in a row cools the token down');
  t.deepEqual(await pool.availability([token(32, 1, 'disabled')]), { usable: false, retryAfterMs: undefined });
});

test('a cooldown taken from the upstream Retry-After lasts at most an hour', async (t) => {
  const pool = new TokenPool(redis, keys);
  const got = await pool.acquire([token(33, 1)], 'far-future', never);
  if (got.kind !== 'leased') return t.fail(got.kind);
  t.is(await got.lease.release('ratelimited', 999_999_999_000), 3_600_000);
  t.true((await redis.pttl(keys.cooldown(33))) <= 3_600_000);
});

test('clearing a cooldown forgets the backoff level and the failures in a row too', async (t) => {
  const pool = new TokenPool(redis, keys, { baseBackoffMs: 1000 });
  const tokens = [token(34, 1)];
  const lease = async (id: string) => {
    const got = await pool.acquire(tokens, id, never);
    if (got.kind !== 'leased') throw new Error(`not leased: ${got.kind}`);
    return got.lease;
  };
  t.is(await (await lease('limited')).release('ratelimited'), 1000);
  await clearCooldown(redis, keys, 34);
  t.is(await (await lease('fails-1')).release('fail'), 0, 'the cooldown is gone at once');
  t.is(await (await lease('fails-2')).release('fail'), 0);
  await clearCooldown(redis, keys, 34);
  t.is(await (await lease('fails-3')).release('fail'), 0, 'the failures before it no longer count');
  t.is(await (await lease('limited-again')).release('ratelimited'), 1000, 'the backoff starts over');
});

test('Retry-After: seconds or an HTTP date', (t) => {
  const now = Date.parse('2030-01-01T00:00:00Z');
  t.is(parseRetryAfter('7', now), 7000);
  t.is(parseRetryAfter('0.5', now), 500);
  t.is(parseRetryAfter('Tue, 01 Jan 2030 00:00:09 GMT', now), 9000);
  t.is(parseRetryAfter('Mon, 31 Dec 2029 23:59:00 GMT', now), 0);
  t.is(parseRetryAfter('soon', now), undefined);
  t.is(parseRetryAfter(null, now), undefined);
});

async function chat(model: string, content: string) {
  const { res, json } = await postJson<{ choices?: Array<{ message: { content: string } }> }>(`${bed.url}/v1/chat/completions`, apiKey, {
    model,
    messages: [{ role: 'user', content }],
    max_tokens: 20,
  });
  return { status: res.status, json };
}

/** A channel `name` on the mock with these tokens, and the model `pool/<name>` on it; answers the token ids. */
async function modelOnChannel(name: string, tokens: Array<{ secret: string; max: number; label: string }>) {
  const channel = await bed.admin.channel(name, 'openai', `${bed.mock.url}/v1`);
  const ids: number[] = [];
  for (const { secret, max, label } of tokens) ids.push((await bed.admin.token(channel.id, secret, max, label)).id);
  await bed.admin.model(`pool/${name}`, {
    channel_id: channel.id,
    upstream_model: 'mock-gpt',
    input_price_per_1m: 1,
    output_price_per_1m: 1,
  });
  return ids;
}

test.serial('3 workers, max_concurrency 2, 50 concurrent slow requests: all succeed, never more than 2 in flight upstream', async (t) => {
  const secret = `tight-${randomBytes(4).toString('hex')}`;
  await modelOnChannel('tight', [{ secret, max: 2, label: 'tight' }]);
  bed.mock.setBehavior(secret, { latencyMs: 150 });
  const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => chat('pool/tight', `request ${i}`)));
  t.deepEqual(
    answers.map((a) => a.status),
    Array(50).fill(200),
  );
  t.is(answers[7].json.choices?.[0].message.content, 'Hello! You said: request 7');
  const stats = bed.mock.stats(secret);
  t.is(stats.calls, 50);
  t.is(stats.maxInFlight, 2, `max in flight ${stats.maxInFlight}`);
});

test.serial('load spreads over the tokens of a channel (least in flight), each within its own limit', async (t) => {
  const [a, b] = ['spread-a', 'spread-b'].map((s) => `${s}-${randomBytes(4).toString('hex')}`);
  await modelOnChannel('spread', [
    { secret: a, max: 3, label: 'spread-a' },
    { secret: b, max: 3, label: 'spread-b' },
  ]);
  bed.mock.setBehavior(a, { latencyMs: 100 });
  bed.mock.setBehavior(b, { latencyMs: 100 });
  const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => chat('pool/spread', `spread ${i}`)));
  t.deepEqual(
    answers.map((x) => x.status),
    Array(30).fill(200),
  );
  const [sa, sb] = [bed.mock.stats(a), bed.mock.stats(b)];
  t.is(sa.calls + sb.calls, 30);
  t.true(sa.calls >= 5 && sb.calls >= 5, `calls ${sa.calls} / ${sb.calls}`);
  t.true(sa.maxInFlight <= 3 && sb.maxInFlight <= 3);
  t.is(Math.max(sa.maxInFlight, sb.maxInFlight), 3, 'both tokens were used up to their limit at once');
});

test.serial('jobs waiting for a token never lease one disabled while they waited', async (t) => {
  const [a, b] = ['waitdis-a', 'waitdis-b'].map((s) => `${s}-${randomBytes(4).toString('hex')}`);
  const [idA] = await modelOnChannel('waitdis', [
    { secret: a, max: 2, label: 'waitdis-a' },
    { secret: b, max: 3, label: 'waitdis-b' },
  ]);
  bed.mock.setBehavior(a, { latencyMs: 2_000 });
  bed.mock.setBehavior(b, { latencyMs: 2_000 });
  const answers = Promise.all(Array.from({ length: 10 }, (_, i) => chat('pool/waitdis', `waiting ${i}`)));
  t.true(await untilTrue(() => bed.mock.stats(a).inFlight + bed.mock.stats(b).inFlight === 5), 'five calls run, five jobs wait');
  await sleep(300);
  await bed.admin.call('PATCH', `/admin/api/tokens/${idA}`, { status: 'disabled' });
  t.deepEqual(
    (await answers).map((x) => x.status),
    Array(10).fill(200),
  );
  t.is(bed.mock.stats(a).calls, 2, 'only the calls that started before the token was disabled');
  t.is(bed.mock.stats(b).calls, 8);
  t.true(bed.mock.stats(b).maxInFlight <= 3);
});

test.serial('jobs waiting for a token follow its max_concurrency lowered while they waited', async (t) => {
  const secret = `waitlow-${randomBytes(4).toString('hex')}`;
  const [id] = await modelOnChannel('waitlow', [{ secret, max: 3, label: 'waitlow' }]);
  bed.mock.setBehavior(secret, { latencyMs: 1_500 });
  let answered = 0;
  const requests = Array.from({ length: 6 }, (_, i) => chat('pool/waitlow', `lowered ${i}`).finally(() => answered++));
  const answers = Promise.all(requests);
  t.true(await untilTrue(() => bed.mock.stats(secret).inFlight === 3), 'three calls run, three jobs wait');
  await sleep(300);
  await bed.admin.call('PATCH', `/admin/api/tokens/${id}`, { max_concurrency: 1 });
  // the first three end upstream before their clients hear of it: from then on only the waiting jobs run
  t.true(await untilTrue(() => answered >= 3));
  t.is(await mostUntil(() => bed.mock.stats(secret).inFlight, answers), 1, 'the lowered limit held for the jobs that were waiting');
  t.deepEqual(
    (await answers).map((x) => x.status),
    Array(6).fill(200),
  );
  t.is(bed.mock.stats(secret).calls, 6);
});
