import { setTimeout as sleep } from 'node:timers/promises';
import test, { type ExecutionContext } from 'ava';
import type { Behavior } from '../src/mock/upstream.js';
import { createRedis } from '../src/redis/index.js';
import { REDIS_URL } from './helpers/env.js';
import { logsOf, type RunningProcess } from './helpers/gateway.js';
import { type MockBed, startMockBed } from './helpers/mock-bed.js';
import { StreamReader } from './helpers/stream.js';
import { until } from './helpers/wait.js';

// Workers killed with SIGKILL mid-job. One worker runs at a time, so the test knows which one holds the job;
// a fresh one is started before the kill and takes the job over through BullMQ's stalled-job check.
/** The documented bound: lock expiry (10 s) + stalled check interval (5 s), plus margin for process start-up. */
const TAKEOVER_BOUND_MS = 25_000;
let bed: MockBed;
let url: string;
let current: RunningProcess;

test.before(async () => {
  bed = await startMockBed('crash', { webs: 1, workers: 1 });
  url = bed.gateway.urls[0];
  current = bed.gateway.workers[0];
});

test.after.always(() => bed?.stop());

function chat(model: string, extra: Record<string, unknown> = {}) {
  return fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${bed.apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 250, ...extra }),
  });
}

/** Starts a new worker to take the jobs from now on; returns the one that holds the job. */
function replaceCurrentWorker(): RunningProcess {
  const holder = current;
  current = bed.gateway.addWorker();
  return holder;
}

/** Starts a new worker, then SIGKILLs the one that holds the job; returns when it died. */
async function killCurrentWorker(): Promise<number> {
  await replaceCurrentWorker().kill('SIGKILL');
  return Date.now();
}

const heldIsZero = async () => (await bed.heldOnceSettled()) === '0';

/** A stream on a new channel that behaves as `behavior`, read until `chunks` of its chunks came. */
async function streamRead(t: ExecutionContext, behavior: Partial<Behavior>, chunks: number) {
  const { model, secret, tokenId } = await bed.channelWith(behavior);
  const res = await chat(model, { stream: true });
  t.is(res.status, 200);
  const stream = new StreamReader(res);
  await stream.readUntil(() => stream.chunks >= chunks);
  return { secret, tokenId, stream, requestId: res.headers.get('x-request-id')! };
}

/** Whether `process` logged `text` about `requestId` (waiting up to 10 s for it). */
async function logged(process: RunningProcess, requestId: string, text: string): Promise<boolean> {
  const says = (lines: string[]) => lines.some((line) => line.includes(requestId) && line.includes(text));
  return says(await logsOf([process], says));
}

/** A stream that was not taken over: it ended normally after one upstream call, billed once, nothing left held. */
async function answeredOnce(t: ExecutionContext, run: Awaited<ReturnType<typeof streamRead>>) {
  await run.stream.readToEnd();
  t.is(run.stream.error, undefined, 'no SSE error: the running call was not taken over');
  t.true(run.stream.text.includes('[DONE]'));
  t.is(bed.mock.stats(run.secret).calls, 1, 'the upstream was called once');
  t.is((await bed.rowsFor(run.requestId)).length, 1, 'billed exactly once');
  t.true(await heldIsZero());
  t.is(await bed.pool.liveLeases(run.tokenId), 0);
}

test.serial(
  'SIGKILL mid-stream: the client gets the SSE error event in bounded time, no double bill, hold and lease released',
  async (t) => {
    const { secret, tokenId, stream, requestId } = await streamRead(t, { chunkDelayMs: 200, reply: Array(120).fill('chunk').join(' ') }, 5);
    const killedAt = await killCurrentWorker();

    await stream.readToEnd();
    const answeredIn = Date.now() - killedAt;
    t.true(answeredIn < TAKEOVER_BOUND_MS, `answered ${answeredIn} ms after the kill`);
    t.is(stream.error?.code, 'upstream_error', 'the stream ends with the SSE error event rather than starting over');
    t.false(stream.text.includes('[DONE]'));
    t.is(bed.mock.stats(secret).calls, 1, 'the re-run did not call the upstream again (its answer would be spliced onto the first)');
    t.true((await bed.rowsFor(requestId)).length <= 1);
    t.true(await heldIsZero());
    t.is(await bed.pool.liveLeases(tokenId), 0, 'the dead worker’s lease is gone');
  },
);

test.serial(
  'a job whose lock lapses while its worker still runs it (a busy worker) is not taken over: the stream ends normally, billed once',
  async (t) => {
    const run = await streamRead(t, { chunkDelayMs: 1_000, reply: Array(20).fill('slow').join(' ') }, 2);
    // what a worker too busy to renew its locks leaves behind: the running job's lock gone; BullMQ's stalled
    // check re-queues the job and the same worker, still running it, is handed it again
    const [lockKey] = await bed.redis.keys(`*:${run.requestId}:lock`);
    t.truthy(lockKey, 'the running job has a BullMQ lock');
    await bed.redis.del(lockKey);

    await answeredOnce(t, run);
    t.true(await logged(current, run.requestId, 'lock lapsed'), 'BullMQ did hand the job over again');
  },
);

/**
 * A stream of 40 `word`s whose worker is stopped mid-stream (SIGSTOP: the busiest worker there is, its
 * connections open, renewing nothing) and whose lock lapses: BullMQ's stalled check (the other worker's) counts
 * the job stalled and re-queues it. `whileStopped` runs before the worker goes on; then the stream must end
 * normally, billed once.
 */
async function busyWorkerRun(t: ExecutionContext, word: string, whileStopped: (lockKey: string, jobKey: string) => Promise<void>) {
  const run = await streamRead(t, { chunkDelayMs: 250, reply: Array(40).fill(word).join(' ') }, 2);
  const busy = replaceCurrentWorker();
  t.teardown(() => busy.kill('SIGTERM'));
  busy.child.kill('SIGSTOP');
  try {
    const [lockKey] = await bed.redis.keys(`*:${run.requestId}:lock`);
    t.truthy(lockKey, 'the running job has a BullMQ lock');
    const jobKey = lockKey.slice(0, -':lock'.length);
    await bed.redis.del(lockKey);
    const stalled = await until(
      async () => Number(await bed.redis.hget(jobKey, 'stc')),
      (n) => n >= 1,
      TAKEOVER_BOUND_MS,
    );
    t.is(stalled, 1, 'BullMQ handed the job over again');
    await whileStopped(lockKey, jobKey);
  } finally {
    busy.child.kill('SIGCONT');
  }
  await answeredOnce(t, run);
  t.is(run.stream.text.split(word).length - 1, 40, 'the whole answer, once');
  return { run, busy };
}

test.serial(
  'a job handed to another worker while its first worker, too busy to renew the lock, still runs it is left to that run: the stream ends normally, billed once',
  async (t) => {
    const { run, busy } = await busyWorkerRun(t, 'busy', () => sleep(2_000));
    t.true(await logged(current, run.requestId, 'waiting for that run'), 'the other worker waited for the run');
    t.true(await logged(current, run.requestId, 'left to that worker'), 'the other worker ended its delivery without touching the request');
    t.true(await logged(busy, run.requestId, 'lost the BullMQ lock'), 'the busy worker learns it lost the lock');
    t.false(busy.output().includes('"level":50'), 'and logs no error for it');
  },
);

test.serial(
  'a job BullMQ fails for stalling twice while its first worker, too busy to renew the lock, still runs it is left to that run: the stream ends normally, billed once',
  async (t) => {
    const { run } = await busyWorkerRun(t, 'twice', async (lockKey, jobKey) => {
      // the other worker now has the job, waiting for the busy one's run; its lock lapses too
      t.true(await logged(current, jobKey.split(':').pop()!, 'waiting for that run'));
      await bed.redis.del(lockKey);
      const failed = await until(
        async () => (await bed.redis.hget(jobKey, 'failedReason')) ?? '',
        (reason) => reason !== '',
        TAKEOVER_BOUND_MS,
      );
      t.regex(failed, /stalled more than allowable limit/, 'BullMQ failed the job');
    });
    t.true(await logged(current, run.requestId, 'left to that run'), 'the worker that saw it fail left it to the run');
  },
);

test.serial(
  'a delivery that starts after another worker claimed the run leaves the request alone: no upstream call, no answer, no charge',
  async (t) => {
    const { model, secret } = await bed.channelWith({});
    // a customer of its own: the hold stays, as the other run's to settle
    const customer = (await bed.admin.user('superseded@example.com', '20')).id;
    const key = await bed.admin.key(customer, { rpm_limit: 1000 });
    // the worker cannot pick the job up until the other run has claimed it
    current.child.kill('SIGSTOP');
    const client = new AbortController();
    const pending = fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 16 }),
      signal: client.signal,
    }).catch((err: Error) => err);
    let requestId = '';
    let jobKey = '';
    const otherWorker = createRedis(REDIS_URL);
    t.teardown(() => otherWorker.disconnect());
    try {
      const waiting = await until(
        async () => {
          const lists = await bed.redis.keys(`${bed.keys.prefix}:*:wait`);
          return (await Promise.all(lists.map(async (list) => (await bed.redis.lrange(list, 0, -1)).map((id) => ({ list, id }))))).flat();
        },
        (jobs) => jobs.length === 1,
      );
      t.is(waiting.length, 1, 'the job waits in its queue');
      requestId = waiting[0].id;
      jobKey = waiting[0].list.replace(/:wait$/, `:${requestId}`);
      // the other run: a present worker process that claimed the job
      await otherWorker.subscribe(bed.keys.workerPresence('other-worker'));
      await bed.redis.set(bed.keys.runClaim(requestId), 'other-worker', 'PX', 60_000);
    } finally {
      current.child.kill('SIGCONT');
    }
    t.true(await logged(current, requestId, 'left to that worker'), 'the delivery found the run claimed');
    t.is(JSON.parse((await bed.redis.hget(jobKey, 'returnvalue')) ?? '{}').status, 'left', 'Bull Board shows the delivery left it');
    await sleep(300);
    t.is(bed.mock.stats(secret).calls, 0, 'no upstream call');
    t.is(await bed.redis.get(bed.keys.runClaim(requestId)), 'other-worker', 'the claim stays the other run’s');
    t.is(await bed.redis.exists(bed.keys.result(requestId)), 0, 'no answer sent');
    t.not((await bed.admin.getUser(customer)).held_usd, '0', 'the hold is the other run’s to settle');
    const rows = (await bed.admin.usage(`key_id=${key.id}`)).data;
    t.is(rows.length, 0, 'nothing charged');
    client.abort();
    await pending;
  },
);

test.serial('SIGKILL mid-call of a non-stream request: the re-run on another worker answers it, billed once', async (t) => {
  const { model, secret, tokenId } = await bed.channelWith({ latencyMs: 3_000 });
  const pending = chat(model);
  await until(
    () => bed.mock.stats(secret).calls,
    (n) => n === 1,
  );
  const killedAt = await killCurrentWorker();
  const res = await pending;
  t.true(Date.now() - killedAt < TAKEOVER_BOUND_MS);
  t.is(res.status, 200);
  const body = (await res.json()) as { choices: Array<{ message: { content: string } }> };
  t.is(body.choices[0].message.content, 'Hello! You said: hi');
  t.is(bed.mock.stats(secret).calls, 2, 'the re-run called the upstream once more');
  t.is((await bed.rowsFor(res.headers.get('x-request-id')!)).length, 1, 'billed exactly once');
  t.true(await heldIsZero());
  t.is(await bed.pool.liveLeases(tokenId), 0);
});

test.serial('a job whose workers die twice is failed by BullMQ, and its client still gets an error at once', async (t) => {
  const { model, secret, tokenId } = await bed.channelWith({ latencyMs: 120_000 });
  const pending = chat(model);
  await until(
    () => bed.mock.stats(secret).calls,
    (n) => n === 1,
  );
  await killCurrentWorker();
  await until(
    () => bed.mock.stats(secret).calls,
    (n) => n === 2,
    TAKEOVER_BOUND_MS,
  );
  t.is(bed.mock.stats(secret).calls, 2, 'the first takeover re-ran the job');
  const killedAgainAt = await killCurrentWorker();
  const res = await pending;
  t.true(Date.now() - killedAgainAt < TAKEOVER_BOUND_MS);
  t.is(res.status, 502);
  const json = (await res.json()) as { error: { code: string; message: string } };
  t.is(json.error.code, 'upstream_error');
  t.regex(json.error.message, /interrupted/);
  t.is((await bed.rowsFor(res.headers.get('x-request-id')!)).length, 0, 'no output, no charge');
  t.true(await heldIsZero());
  t.is(bed.mock.stats(secret).calls, 2);
  t.is(await bed.pool.liveLeases(tokenId), 0, 'the dead worker’s lease is gone');
});

test.serial(
  'SIGTERM while a stream outlasts the drain time: the worker cuts it, bills what was produced, and the client gets the SSE error event',
  async (t) => {
    // 120 chunks a second apart: far longer than the worker's 20 s drain
    const run = await streamRead(t, { chunkDelayMs: 1_000, reply: Array(120).fill('long').join(' ') }, 2);
    const stopping = replaceCurrentWorker();
    const stoppedAt = Date.now();
    const exited = stopping.kill('SIGTERM');

    await run.stream.readToEnd();
    await exited;
    const stoppedIn = Date.now() - stoppedAt;
    t.true(stoppedIn < 28_000, `the worker exited ${stoppedIn} ms after SIGTERM`);
    t.is(stopping.child.exitCode, 0, 'it stopped cleanly, not at the deadline');
    t.is(run.stream.error?.code, 'upstream_error');
    t.regex(run.stream.error?.message ?? '', /interrupted by a gateway restart/);
    t.false(run.stream.text.includes('[DONE]'));
    const rows = await bed.rowsFor(run.requestId);
    t.is(rows.length, 1, 'what was streamed is billed, once');
    t.true(await heldIsZero());
    t.is(bed.mock.stats(run.secret).calls, 1, 'nobody called the upstream again');
    t.is(await bed.pool.liveLeases(run.tokenId), 0);
  },
);

test.serial(
  'SIGTERM while a non-stream call outlasts the drain time: it is left to the re-run on another worker, which answers it, billed once',
  async (t) => {
    const { model, secret } = await bed.channelWith({ latencyMs: 60_000 });
    const pending = chat(model);
    await until(
      () => bed.mock.stats(secret).calls,
      (n) => n === 1,
    );
    bed.mock.setBehavior(secret, { latencyMs: 0 }); // the re-run's call answers at once
    const stopping = replaceCurrentWorker();
    await stopping.kill('SIGTERM');
    t.is(stopping.child.exitCode, 0);

    const res = await pending;
    t.is(res.status, 200, 'answered by the re-run, not cut');
    t.is(bed.mock.stats(secret).calls, 2);
    t.is((await bed.rowsFor(res.headers.get('x-request-id')!)).length, 1, 'billed exactly once');
    t.true(await heldIsZero());
  },
);
