import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { type Job, Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { emptyRedisPrefix, REDIS_URL } from './helpers/env.js';

// BullMQ as eastx installs it (patches/bullmq+*.patch), on a real Redis: moving a job to active adds the
// wake-up marker only when another job is left to take. Unpatched, every move to active adds it, so an idle
// worker pops it at once and asks Redis for a job that is not there (two commands per job for nothing).

const prefix = `eastx-test-marker-${randomBytes(4).toString('hex')}`;
const connections: Redis[] = [];
const connection = () => {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  connections.push(redis);
  return redis;
};

test.after.always(async () => {
  await emptyRedisPrefix(`${prefix}:`);
  for (const redis of connections) redis.disconnect();
});

/** A queue and a worker that fetches by hand (no main loop), so each move to active is the test's own. */
async function handFetched(t: { teardown(fn: () => Promise<void>): void }) {
  const name = `q${randomBytes(3).toString('hex')}`;
  const queue = new Queue(name, { connection: connection(), prefix });
  const worker = new Worker(name, null, { connection: connection(), prefix, autorun: false });
  t.teardown(async () => {
    await worker.close();
    await queue.close();
  });
  const redis = connection();
  const markerKey = `${prefix}:${name}:marker`;
  return {
    queue,
    worker,
    /** what a worker's blocking pop does with the marker: take it */
    popMarker: () => redis.del(markerKey),
    markers: () => redis.zcard(markerKey),
  };
}

test('a job moved to active adds no wake-up marker when no other job waits', async (t) => {
  const { queue, worker, popMarker, markers } = await handFetched(t);
  await queue.add('only', {});
  await popMarker();
  const job = await worker.getNextJob('token-1', { block: false });
  t.is(job?.name, 'only');
  t.is(await markers(), 0);
});

test('a job moved to active adds the marker when another job is left, for an idle worker to take it', async (t) => {
  const { queue, worker, popMarker, markers } = await handFetched(t);
  await queue.addBulk([
    { name: 'first', data: {} },
    { name: 'second', data: {} },
  ]);
  await popMarker();
  const first = (await worker.getNextJob('token-1', { block: false })) as Job;
  t.is(first.name, 'first');
  t.is(await markers(), 1);

  // finishing a job fetches the next in the same call; that was the last, so no marker follows it
  await popMarker();
  const [next] = (await first.moveToCompleted('done', 'token-1', true)) as [{ name: string }];
  t.is(next.name, 'second');
  t.is(await markers(), 0);
});

type Processor = (job: Job) => Promise<void>;

/** A queue with a running worker per processor, each blocking up to 10 s for a marker; closed after the test. */
async function queueWithWorkers(t: { teardown(fn: () => Promise<void>): void }, concurrency: number, ...processors: Processor[]) {
  const name = `q${randomBytes(3).toString('hex')}`;
  const queue = new Queue(name, { connection: connection(), prefix });
  const workers = processors.map(
    (processor) => new Worker(name, processor, { connection: connection(), prefix, concurrency, drainDelay: 10 }),
  );
  t.teardown(async () => {
    await Promise.all(workers.map((w) => w.close()));
    await queue.close();
  });
  await Promise.all(workers.map((w) => w.waitUntilReady()));
  return { name, queue };
}

test('two jobs added at once start at once on two workers of one job each', async (t) => {
  const started: { worker: string; at: number }[] = [];
  const workerNamed = (id: string) => async () => {
    started.push({ worker: id, at: Date.now() });
    await sleep(1_000);
  };
  const { queue } = await queueWithWorkers(t, 1, workerNamed('a'), workerNamed('b'));
  await sleep(200); // both are blocked on the marker now

  await queue.addBulk([
    { name: 'one', data: {} },
    { name: 'two', data: {} },
  ]);
  while (started.length < 2) await sleep(20);
  t.deepEqual(started.map((s) => s.worker).sort(), ['a', 'b']);
  // one marker woke the first worker; had its move to active left none, the second would sleep through its
  // 10 s block and the first would take both jobs one after the other
  t.true(started[1]!.at - started[0]!.at < 500, `second job started ${started[1]!.at - started[0]!.at} ms after the first`);
});

/** Every move-to-active script call Redis runs on `queueName`'s keys (11 keys, the wait list first). */
async function movesToActive(queueName: string) {
  const monitor = await connection().monitor();
  const waitKey = `${prefix}:${queueName}:wait`;
  let moves = 0;
  monitor.on('monitor', (_time: string, args: string[]) => {
    if (args[0]?.toLowerCase() === 'evalsha' && args[2] === '11' && args[3] === waitKey) moves++;
  });
  return { count: () => moves, stop: () => monitor.disconnect() };
}

test('a worker that took the last waiting job blocks for the next at once; a later job still starts at once', async (t) => {
  const started: number[] = [];
  const { name, queue } = await queueWithWorkers(t, 8, async () => {
    started.push(Date.now());
  });
  await sleep(200);
  const moves = await movesToActive(name);
  t.teardown(moves.stop);

  for (let job = 1; job <= 3; job++) {
    const addedAt = Date.now();
    await queue.add(`job-${job}`, {});
    while (started.length < job) await sleep(10);
    // well under the 10 s block: the job's own marker woke the blocked worker
    t.true(started[job - 1]! - addedAt < 1_000, `job ${job} started ${started[job - 1]! - addedAt} ms after it was added`);
    await sleep(300); // the worker settles back into its blocking pop
  }
  // one move to active per job; unpatched, the worker asks again after each job it takes and after the marker
  // that job's move left behind (three per job)
  t.is(moves.count(), 3);
});

test('a delayed job still starts when due, not when the worker next wakes on its own', async (t) => {
  const started: Record<string, number> = {};
  const { queue } = await queueWithWorkers(t, 8, async (job) => {
    started[job.name] = Date.now();
  });
  const addedAt = Date.now();
  await queue.add('later', {}, { delay: 1_500 });
  await queue.add('now', {});
  while (!started.later) await sleep(20);
  t.true(started.now! - addedAt < 1_000);
  const lateBy = started.later - addedAt;
  t.true(lateBy >= 1_400 && lateBy < 4_000, `the delayed job started ${lateBy} ms after it was added`);
});
