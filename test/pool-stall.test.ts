import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { createRedis, RedisKeys } from '../src/redis/index.js';
import { mockChannel } from './helpers/admin.js';
import { type Bed, startBed } from './helpers/bed.js';
import { newCustomer, postJson } from './helpers/customer.js';
import { REDIS_URL } from './helpers/env.js';
import { mostUntil, until, untilTrue } from './helpers/wait.js';

// A worker that stalls (SIGSTOP) longer than its token leases last, while other workers fill the token: when it
// resumes, its calls must not run on beside theirs past the token's max_concurrency (SPEC §4).

let bed: Bed;
let userId: number;
let keyId: number;
let apiKey: string;

test.before(async () => {
  bed = await startBed('pool_stall', { workers: 1 });
  ({ userId, keyId, apiKey } = await newCustomer(bed.admin, 'stall@example.com', '50', { rpm_limit: 10_000 }));
});

test.after.always(() => bed?.stop());

const chat = (model: string, content: string) =>
  postJson(`${bed.url}/v1/chat/completions`, apiKey, { model, messages: [{ role: 'user', content }], max_tokens: 20 });

test.serial('a worker that stalled past its leases stops its calls when it resumes and finds the token full', async (t) => {
  const { model, secret, tokenId } = await mockChannel(bed.admin, bed.mock, 'stall', { latencyMs: 30_000 });
  await bed.admin.call('PATCH', `/admin/api/tokens/${tokenId}`, { max_concurrency: 2 });
  const [stalled] = bed.gateway.workers;
  const first = [chat(model, 'first 0'), chat(model, 'first 1')];
  t.true(await untilTrue(() => bed.mock.stats(secret).inFlight === 2), 'the first worker runs two calls');

  const presence = createRedis(REDIS_URL);
  t.teardown(() => presence.disconnect());
  const prefix = new RedisKeys(bed.config.redisPrefix).workerPresence('');
  const other = bed.gateway.addWorker();
  t.true(await untilTrue(async () => (await presence.pubsub('CHANNELS', `${prefix}*`)).length === 2), 'the second worker is up');
  await sleep(1_000);

  stalled.child.kill('SIGSTOP');
  try {
    bed.mock.setBehavior(secret, { latencyMs: 12_000 });
    const second = [chat(model, 'second 0'), chat(model, 'second 1')];
    // the stalled worker's leases lapse (15 s after their last renewal) and the other worker takes the token
    t.true(await untilTrue(() => bed.mock.stats(secret).inFlight === 4, 40_000), 'the other worker filled the token');
    stalled.child.kill('SIGCONT');
    t.true(
      await untilTrue(() => bed.mock.stats(secret).inFlight <= 2, 5_000, 20),
      'the resumed worker stopped the calls it ran without a lease, as the token is full',
    );
    bed.mock.setBehavior(secret, { latencyMs: 300 });
    const answers = Promise.all([...first, ...second]);
    t.true((await mostUntil(() => bed.mock.stats(secret).inFlight, answers)) <= 2, 'never more than max_concurrency again');
    t.deepEqual(
      (await answers).map((a) => a.res.status),
      [200, 200, 200, 200],
      'the stopped calls were made again once the token had room',
    );
    t.is(bed.mock.stats(secret).closedEarly, 2);
    t.is(other.child.exitCode, null);
    const held = await until(
      async () => (await bed.admin.getUser(userId)).held_usd,
      (h) => Number(h) === 0,
    );
    t.is(Number(held), 0, 'every hold settled');
    t.is((await bed.admin.usage(`key_id=${keyId}`)).data.length, 4, 'each request billed once');
  } finally {
    stalled.child.kill('SIGCONT');
  }
});
