import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { holdExists, placeHold } from '../src/billing/holds.js';
import { createDb, type Db } from '../src/db/index.js';
import { ApiError } from '../src/http/errors.js';
import { abortJob } from '../src/queue/abort.js';
import type { JobBase } from '../src/queue/jobs.js';
import { RelayPublisher } from '../src/queue/worker-relay.js';
import { createRedis, type Redis, RedisKeys } from '../src/redis/index.js';
import type { WorkerContext } from '../workers/context.js';
import { runJob } from '../workers/job-kit.js';
import { claimRun, takeOverRun } from '../workers/run-claim.js';
import { fundedKey } from './helpers/db-customer.js';
import { freshEnvironment, REDIS_URL } from './helpers/env.js';

// Which worker process runs a job (workers/run-claim.ts), against a real Redis: a re-delivered job waits for
// a run that a live process still has, and takes over the run of a process that is gone.
let redis: Redis;
let listener: Redis;
let db: Db;
let keys: RedisKeys;

test.before(async () => {
  const { env } = await freshEnvironment('runclaim');
  db = createDb(env.DATABASE_URL, 2);
  keys = new RedisKeys(env.QUEUE_PREFIX);
  redis = createRedis(REDIS_URL);
  listener = createRedis(REDIS_URL);
});

test.after.always(async () => {
  redis?.disconnect();
  listener?.disconnect();
  await db?.destroy();
});

const jobOf = (extra: Partial<JobBase> = {}): JobBase => ({
  requestId: `req_${randomBytes(8).toString('hex')}`,
  webId: `web-${randomBytes(4).toString('hex')}`,
  userId: 1,
  keyId: 1,
  model: 'm',
  channelId: 1,
  routes: [],
  homeRoute: 0,
  prices: { inputMicro: '1', outputMicro: '1', imageNano: '0' },
  holdNano: '1000',
  deadlineAt: Date.now() + 60_000,
  ...extra,
});

/** A worker process that is there: a connection of its own subscribed to its presence channel. */
async function presentWorker(t: { teardown(fn: () => void): void }): Promise<string> {
  const id = `live-${randomBytes(4).toString('hex')}`;
  const connection = createRedis(REDIS_URL);
  t.teardown(() => connection.disconnect());
  await connection.subscribe(keys.workerPresence(id));
  return id;
}

/** Frames published on a web process's relay channel while `during` runs (and 200 ms after). */
async function framesOn(webId: string, during: () => Promise<unknown>): Promise<string[]> {
  const frames: string[] = [];
  const channel = keys.relay(webId);
  const onMessage = (from: string, message: string) => from === channel && frames.push(message);
  listener.on('message', onMessage);
  await listener.subscribe(channel);
  try {
    await during();
    await sleep(200);
  } finally {
    listener.off('message', onMessage);
    await listener.unsubscribe(channel);
  }
  return frames;
}

test('the first claim of a run wins', async (t) => {
  const job = jobOf();
  t.true(await claimRun(redis, keys, job, 'worker-a'));
  t.false(await claimRun(redis, keys, job, 'worker-b'));
  t.is(await redis.get(keys.runClaim(job.requestId)), 'worker-a');
});

test('a re-run takes a job nobody claimed at once', async (t) => {
  const job = jobOf();
  t.true(await takeOverRun(redis, keys, job, 'worker-b', new AbortController().signal));
  t.is(await redis.get(keys.runClaim(job.requestId)), 'worker-b');
});

test('a re-run takes over the run of a worker that is gone, after looking twice', async (t) => {
  const job = jobOf();
  t.true(await claimRun(redis, keys, job, 'gone-worker'));
  const started = Date.now();
  t.true(await takeOverRun(redis, keys, job, 'worker-b', new AbortController().signal));
  t.true(Date.now() - started >= 900, 'absent on two looks a second apart');
  t.is(await redis.get(keys.runClaim(job.requestId)), 'worker-b');
});

test('a re-run waits for the run of a worker that is there, and leaves the request to it', async (t) => {
  const job = jobOf();
  const owner = await presentWorker(t);
  t.true(await claimRun(redis, keys, job, owner));
  const started = Date.now();
  const decision = takeOverRun(redis, keys, job, 'worker-b', new AbortController().signal);
  await sleep(1_500);
  // another worker's final frame leaves the claim alone; the owner's own ends it
  const error = new ApiError('upstream_error', 'interrupted').toWire();
  await new RelayPublisher(redis, keys, job, 'worker-b').send({ t: 'error', error });
  t.is(await redis.get(keys.runClaim(job.requestId)), owner);
  await new RelayPublisher(redis, keys, job, owner).send({ t: 'done', costNano: '1', result: {} });
  t.is(await redis.get(keys.runClaim(job.requestId)), null);
  t.false(await decision, 'the run went on in its own process');
  t.true(Date.now() - started >= 1_500);
  t.is(await redis.get(keys.runClaim(job.requestId)), null, 'the waiting worker claims nothing');
});

test('a re-run stops waiting for a live run once its own signal aborts, and leaves the claim', async (t) => {
  const job = jobOf();
  const owner = await presentWorker(t);
  t.true(await claimRun(redis, keys, job, owner));
  const controller = new AbortController();
  setTimeout(() => abortJob(controller, 'cancelled'), 300);
  t.false(await takeOverRun(redis, keys, job, 'worker-b', controller.signal));
  t.is(await redis.get(keys.runClaim(job.requestId)), owner);
});

/** A customer with a hold of 1,000 nano-USD for a new request. */
async function heldJob(): Promise<JobBase> {
  const { userId, keyId } = await fundedKey(db, `${randomBytes(4).toString('hex')}@example.com`, 1_000_000n);
  const job = jobOf({ userId, keyId });
  if (!(await placeHold(db, { requestId: job.requestId, userId, keyId: job.keyId, channelId: 1, amountNano: 1000n }))) {
    throw new Error('hold refused');
  }
  return job;
}

/** Runs a job whose signal aborted for `reason` before its work (which then fails as an aborted call does). */
async function abortedRun(reason: 'superseded' | 'cancelled') {
  const job = await heldJob();
  const ctx = { db, redis, keys, workerId: 'worker-a' } as unknown as WorkerContext;
  const controller = new AbortController();
  abortJob(controller, reason);
  let failed = false;
  const frames = await framesOn(job.webId, () =>
    runJob(ctx, job, controller.signal, async () => {
      throw new Error('aborted');
    }).catch(() => (failed = true)),
  );
  return { failed, frames, held: await holdExists(db, job.requestId) };
}

test('a run superseded by another worker touches neither the hold nor the relay', async (t) => {
  const superseded = await abortedRun('superseded');
  t.true(superseded.failed);
  t.true(superseded.held, 'the hold is the other run’s to settle');
  t.deepEqual(superseded.frames, [], 'the other run answers the client');
  // the same run cancelled instead: the request ends here, uncharged, with an error frame
  const cancelled = await abortedRun('cancelled');
  t.true(cancelled.failed);
  t.false(cancelled.held);
  t.is(cancelled.frames.length, 1);
});
