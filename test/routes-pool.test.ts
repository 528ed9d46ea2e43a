import { randomBytes } from 'node:crypto';
import test from 'ava';
import type { CatalogSnapshot, ModelRoute, UpstreamToken } from '../src/catalog/catalog.js';
import { createRedis, type Redis, RedisKeys } from '../src/redis/index.js';
import { readChannelHealth } from '../src/upstream/health.js';
import { type RouteCandidate, TokenPool } from '../src/upstream/pool.js';
import { candidatesFor, chooseHome } from '../src/upstream/routing.js';
import { emptyRedisPrefix, REDIS_URL } from './helpers/env.js';

// The route picker (src/upstream/acquire.lua through TokenPool.acquireRoute) and the channel health that the
// release script keeps, against a real Redis shared by two connections (as two worker processes share it).

let redis: Redis;
let other: Redis;
let keys: RedisKeys;
const never = new AbortController().signal;

test.before(() => {
  redis = createRedis(REDIS_URL);
  other = createRedis(REDIS_URL);
  keys = new RedisKeys(`{eastx-test-routes-pool-${randomBytes(4).toString('hex')}}`);
});

test.after.always(async () => {
  await emptyRedisPrefix(keys.prefix);
  redis?.disconnect();
  other?.disconnect();
});

let nextId = 1000;
/** A channel with `n` tokens of their own ids. */
function channel(n: number, maxConcurrency = 4) {
  const channelId = nextId++;
  const tokens: UpstreamToken[] = Array.from({ length: n }, () => ({
    id: nextId++,
    channelId,
    name: 't',
    maxConcurrency,
    status: 'active',
    secretEnc: '',
  }));
  return { channelId, tokens };
}

const candidate = (c: ReturnType<typeof channel>, tier: number, weight = 1, rank = 1): RouteCandidate => ({
  channelId: c.channelId,
  tier,
  rank,
  weight,
  tokens: c.tokens,
});

async function leaseOn(pool: TokenPool, routes: RouteCandidate[], job: string) {
  const got = await pool.acquireRoute(routes, job, never);
  if (got.kind !== 'leased') throw new Error(`not leased: ${got.kind}`);
  return got;
}

test('the highest tier is used while it has a free token; a busy tier is waited for, not skipped', async (t) => {
  const pool = new TokenPool(redis, keys);
  const high = channel(1, 2);
  const low = channel(1, 10);
  const routes = [candidate(high, 0), candidate(low, 1)];
  const a = await leaseOn(pool, routes, 'tier-a');
  const b = await leaseOn(pool, routes, 'tier-b');
  t.is(a.route, 0);
  t.is(b.route, 0);
  // the high tier is full now: the next job waits for it rather than taking the lower tier
  const waiting = new AbortController();
  const third = pool.acquireRoute(routes, 'tier-c', waiting.signal);
  await new Promise((r) => setTimeout(r, 150));
  await a.lease.release('ok');
  const c = await third;
  t.is(c.kind === 'leased' && c.route, 0, 'the freed high-tier token went to the waiting job');
  t.is(await pool.liveLeases(low.tokens[0].id), 0, 'the lower tier was never leased');
});

test('a tier whose tokens are all cooling is passed over; all cooling → the soonest return', async (t) => {
  const pool = new TokenPool(redis, keys);
  const high = channel(2);
  const low = channel(1);
  await redis.set(keys.cooldown(high.tokens[0].id), 'ratelimited', 'PX', 8000);
  await redis.set(keys.cooldown(high.tokens[1].id), 'ratelimited', 'PX', 5000);
  const got = await leaseOn(pool, [candidate(high, 0), candidate(low, 1)], 'cool-pass');
  t.is(got.route, 1);
  await got.lease.release('ok');
  await redis.set(keys.cooldown(low.tokens[0].id), 'ratelimited', 'PX', 3000);
  const none = await pool.acquireRoute([candidate(high, 0), candidate(low, 1)], 'cool-all', never);
  t.is(none.kind, 'cooling');
  t.true(none.kind === 'cooling' && none.retryAfterMs > 2000 && none.retryAfterMs <= 3000, JSON.stringify(none));
});

test('within a tier: by weight among routes with a free token (two processes asking)', async (t) => {
  const pools = [new TokenPool(redis, keys), new TokenPool(other, keys)];
  const a = channel(1, 100_000);
  const b = channel(1, 100_000);
  const routes = [candidate(a, 0, 3), candidate(b, 0, 1)];
  const n = 2000;
  let onA = 0;
  for (let i = 0; i < n; i += 100) {
    const got = await Promise.all(Array.from({ length: 100 }, (_, j) => leaseOn(pools[j % 2], routes, `w-${i + j}`)));
    onA += got.filter((g) => g.route === 0).length;
    await Promise.all(got.map((g) => g.lease.release('ok')));
  }
  // binomial(2000, 0.75): sd ≈ 19.4; 5 sd either way
  t.true(Math.abs(onA - 1500) < 97, `${onA} of ${n} on the weight-3 route`);
});

test('within a tier: the home route (rank 0) first while it has a free token, then the others by weight', async (t) => {
  const pool = new TokenPool(redis, keys);
  const home = channel(1, 1);
  const other = channel(1, 5);
  const routes = [candidate(other, 0, 100, 1), candidate(home, 0, 1, 0)];
  const first = await leaseOn(pool, routes, 'home-1');
  t.is(first.route, 1, 'the home route despite its small weight');
  const second = await leaseOn(pool, routes, 'home-2');
  t.is(second.route, 0, 'home full: another route of the tier');
});

test('unhealthy channels are skipped while another route has a token, and tried as a last resort', async (t) => {
  const pool = new TokenPool(redis, keys);
  const sick = channel(1);
  const well = channel(1);
  await redis.hset(keys.channelHealth(sick.channelId), 'unhealthy_since', Date.now());
  for (let i = 0; i < 5; i++) {
    const got = await leaseOn(pool, [candidate(sick, 0, 100), candidate(well, 1)], `sick-${i}`);
    t.is(got.route, 1, 'the lower-priority healthy route, not the unhealthy one');
    await got.lease.release('ok');
  }
  await redis.set(keys.cooldown(well.tokens[0].id), 'fail', 'PX', 5000);
  const last = await leaseOn(pool, [candidate(sick, 0), candidate(well, 1)], 'sick-last');
  t.is(last.route, 0, 'nothing healthy to offer: the unhealthy route is tried');
  await last.lease.release('ok');
  t.is(await redis.hexists(keys.channelHealth(sick.channelId), 'unhealthy_since'), 0, 'a call that answered brings it back');
});

test('channel health: N failures in a row across its tokens make it unhealthy; a 429 does not count, an answer ends the row', async (t) => {
  const pool = new TokenPool(redis, keys, { unhealthyAfter: 4, failuresBeforeCooldown: 100 });
  const c = channel(3);
  const route = [candidate(c, 0)];
  const health = async () => (await readChannelHealth(redis, keys, [{ id: c.channelId, tokens: c.tokens }])).get(c.channelId)!;
  for (let i = 0; i < 3; i++) await (await leaseOn(pool, route, `f-${i}`)).lease.release('fail', 0, 'HTTP 500: boom');
  await (await leaseOn(pool, route, 'rl')).lease.release('ratelimited', 1, 'HTTP 429: slow down');
  t.like(await health(), { state: 'healthy', failuresInRow: 3, lastError: 'HTTP 429: slow down' });
  await (await leaseOn(pool, route, 'ok')).lease.release('ok');
  t.like(await health(), { state: 'healthy', failuresInRow: 0 }, 'an answer ends the row');
  for (let i = 0; i < 4; i++) await (await leaseOn(pool, route, `g-${i}`)).lease.release('fail', 0, 'no connection');
  const sick = await health();
  t.is(sick.state, 'unhealthy');
  t.truthy(sick.unhealthySince);
  t.is(sick.lastError, 'no connection');
  await (await leaseOn(pool, route, 'back')).lease.release('ok');
  t.like(await health(), { state: 'healthy', unhealthySince: null, lastError: 'no connection' }, 'the last error stays for operators');
});

test('route state: cooling (with the soonest return) when every active token cools, disabled without an active token', async (t) => {
  const c = channel(2);
  await redis.set(keys.cooldown(c.tokens[0].id), 'ratelimited', 'PX', 9000);
  t.is((await readChannelHealth(redis, keys, [{ id: c.channelId, tokens: c.tokens }])).get(c.channelId)?.state, 'healthy');
  await redis.set(keys.cooldown(c.tokens[1].id), 'ratelimited', 'PX', 4000);
  const cooling = (await readChannelHealth(redis, keys, [{ id: c.channelId, tokens: c.tokens }])).get(c.channelId)!;
  t.is(cooling.state, 'cooling');
  const until = Date.parse(cooling.coolingUntil!) - Date.now();
  t.true(until > 2000 && until <= 4100, `${until}`);
  const off = c.tokens.map((tk) => ({ ...tk, status: 'disabled' as const }));
  t.is((await readChannelHealth(redis, keys, [{ id: c.channelId, tokens: off }])).get(c.channelId)?.state, 'disabled');
});

test('home route: drawn by weight within the top priority among channels with an active token', (t) => {
  const tokens = (channelId: number, status: 'active' | 'disabled' = 'active'): UpstreamToken[] => [
    { id: channelId * 10, channelId, name: '', maxConcurrency: 1, status, secretEnc: '' },
  ];
  const catalog = {
    channels: new Map([1, 2, 3, 4].map((id) => [id, { id, name: '', type: 'openai', baseUrl: '' }])),
    tokensByChannel: new Map([
      [1, tokens(1, 'disabled')],
      [2, tokens(2)],
      [3, tokens(3)],
      [4, tokens(4)],
    ]),
  } as unknown as CatalogSnapshot;
  const routes: ModelRoute[] = [
    { channelId: 1, upstreamModel: 'a', priority: 9, weight: 5 },
    { channelId: 2, upstreamModel: 'b', priority: 5, weight: 3 },
    { channelId: 3, upstreamModel: 'c', priority: 5, weight: 1 },
    { channelId: 4, upstreamModel: 'd', priority: 0, weight: 1 },
  ];
  t.is(chooseHome(routes, catalog, 0), 1, 'channel 1 has no active token: the next priority');
  t.is(chooseHome(routes, catalog, 0.74), 1);
  t.is(chooseHome(routes, catalog, 0.76), 2);
  const candidates = candidatesFor(routes, catalog, { home: 2, failed: new Set([1]), tried: new Set([20]) });
  t.deepEqual(
    candidates.map((c) => [c.index, c.tier, c.rank, c.tokens.map((tk) => tk.id)]),
    [
      [0, 0, 1, []],
      [1, 1, 2, []],
      [2, 1, 1, [30]],
      [3, 2, 1, [40]],
    ],
    'tiers by priority; after a failure no home preference, failed routes last; tried and disabled tokens left out',
  );
});
