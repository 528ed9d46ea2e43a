import type { Redis, RedisKeys } from '../redis/index.js';

/** A cancel mark outlives any job still queued when its client left. */
const CANCEL_MARK_MS = 15 * 60_000;

/**
 * Web → worker: a client went away. Published on one channel (`{prefix}:cancel`, the message is the request
 * id) for the worker running the job, and marked for a worker that picks the job up later.
 */
export async function requestCancel(redis: Redis, keys: RedisKeys, requestId: string): Promise<void> {
  await Promise.all([redis.set(keys.cancelled(requestId), '1', 'PX', CANCEL_MARK_MS), redis.publish(keys.cancel(), requestId)]);
}

/** Worker side, as a job starts: was it cancelled while still queued? */
export async function wasCancelled(redis: Redis, keys: RedisKeys, requestId: string): Promise<boolean> {
  return (await redis.exists(keys.cancelled(requestId))) > 0;
}
