import type { Job } from 'bullmq';
import { releaseHold } from '../src/billing/settlement.js';
import { ApiError } from '../src/http/errors.js';
import type { JobBase } from '../src/queue/jobs.js';
import { RelayPublisher } from '../src/queue/relay.js';
import type { WorkerContext } from './context.js';

/** BullMQ's reason for a job whose workers died more often than `maxStalledCount` allows. */
export const STALLED_TOO_OFTEN = /stalled more than allowable limit/;

export const interrupted = () =>
  new ApiError('upstream_error', 'the request was interrupted by a worker restart; please retry', {
    fields: { upstream_status: 0 },
  });

/** A run of a job that BullMQ took over from a worker that died (lock expired, stalled check re-queued it). */
export const isRerun = (job: Job) => job.stalledCounter > 0 || job.attemptsStarted > 1;

/**
 * Decides what a re-run may do. It drops the dead run's leases at once (they would expire after leaseMs
 * anyway). It answers the request again only if nothing of it is settled or shown yet: the hold is still
 * there (not settled or released) and no chunk reached the client (a second answer would be spliced onto
 * the first). Otherwise it returns the error to answer instead, without calling the upstream again.
 */
export async function rerunRefusal(ctx: WorkerContext, job: JobBase): Promise<ApiError | undefined> {
  const tokens = (await ctx.catalog.latest()).tokensByChannel.get(job.channelId) ?? [];
  const [hold, streamStarted] = await Promise.all([
    ctx.db.selectFrom('holds').select('request_id').where('request_id', '=', job.requestId).executeTakeFirst(),
    ctx.redis.exists(ctx.keys.streamStarted(job.requestId)),
    ctx.pool.forget(tokens, job.requestId),
  ]);
  return hold && !streamStarted ? undefined : interrupted();
}

/**
 * Ends a request that will not run (again): drops its leases and its hold (unbilled; whatever a dead run
 * streamed is not billed, as its count died with it) and relays the error to the web side.
 */
export async function abandon(ctx: WorkerContext, job: JobBase, error: ApiError): Promise<void> {
  const tokens = (await ctx.catalog.latest()).tokensByChannel.get(job.channelId) ?? [];
  await ctx.pool.forget(tokens, job.requestId);
  await releaseHold(ctx.db, job.requestId);
  await ctx.redis.del(ctx.keys.streamStarted(job.requestId));
  await RelayPublisher.forJob(ctx.redis, ctx.keys, job).send({ t: 'error', error: error.toWire() });
}
