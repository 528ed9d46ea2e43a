import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { log } from '../src/log.js';
import { type JobBase, markTtlMs } from '../src/queue/jobs.js';
import type { Redis, RedisKeys } from '../src/redis/index.js';

/**
 * Which worker process runs a job. BullMQ re-queues a job whose lock was not renewed in time, and that
 * happens to a worker that died and to one merely too busy to renew it (a burst). A run claims its job at
 * the start (one SET, sent with the job's cancel check); the final frame removes the claim
 * (relay-final.lua). A worker process is present while its subscription to its presence channel exists:
 * the kernel closes a dead process's connection at once, a busy process keeps it.
 */

/** How often a re-run looks again at a run going on in another process. */
const LOOK_AGAIN_MS = 1_000;

/** This process's name in run claims: host, pid and a random part (pids repeat across dynos). */
export const newWorkerId = (): string => `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;

/** Claims the job's run for `workerId`; false when another process claimed it first. */
export async function claimRun(redis: Redis, keys: RedisKeys, job: JobBase, workerId: string): Promise<boolean> {
  const claimed = await redis.set(keys.runClaim(job.requestId), workerId, 'PX', markTtlMs(job), 'NX');
  return claimed === 'OK';
}

async function isPresent(redis: Redis, keys: RedisKeys, workerId: string): Promise<boolean> {
  const [, subscribers] = (await redis.pubsub('NUMSUB', keys.workerPresence(workerId))) as [string, number | string];
  return Number(subscribers) > 0;
}

/** Whether a present worker process claims the request's run (it may run a job BullMQ no longer lists). */
export async function runClaimedByPresentWorker(redis: Redis, keys: RedisKeys, requestId: string): Promise<boolean> {
  const owner = await redis.get(keys.runClaim(requestId));
  return owner !== null && (await isPresent(redis, keys, owner));
}

/**
 * For a job BullMQ handed over again: true once the job is this process's to run, i.e. nobody claimed it,
 * or its claimant is gone (absent on two looks a second apart, so a reconnecting subscriber is not taken
 * for a dead process). False when another live process runs it: it ended meanwhile (its claim went with
 * its final frame), or it still runs when `signal` aborts (that run has the same deadline and hears the
 * same cancel). Meanwhile BullMQ keeps this process's lock on the job renewed.
 */
export async function takeOverRun(redis: Redis, keys: RedisKeys, job: JobBase, workerId: string, signal: AbortSignal): Promise<boolean> {
  const claim = keys.runClaim(job.requestId);
  let waited = false;
  let absentOnce = false;
  for (;;) {
    if (!waited && (await claimRun(redis, keys, job, workerId))) return true;
    const owner = await redis.get(claim);
    if (owner === null) {
      if (waited) return false;
      continue;
    }
    if (owner === workerId) return true;
    if (await isPresent(redis, keys, owner)) {
      if (!waited) log.warn({ requestId: job.requestId, owner }, 'job re-queued while another worker runs it: waiting for that run');
      waited = true;
      absentOnce = false;
    } else if (absentOnce) {
      await redis.set(claim, workerId, 'PX', markTtlMs(job));
      return true;
    } else {
      absentOnce = true;
    }
    if (signal.aborted) return false;
    await sleep(LOOK_AGAIN_MS, undefined, { signal }).catch(() => undefined);
  }
}
