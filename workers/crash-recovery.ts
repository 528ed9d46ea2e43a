import type { Job } from 'bullmq';
import { voidRequest } from '../src/billing/unbillable.js';
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
 * anyway). It answers the request again only if nothing of it is settled, shown or answered yet: the hold
 * is still there (not settled or released), no chunk reached the client (a second answer would be spliced
 * onto the first) and no final message went out (the client may already have its answer or its error).
 * Otherwise it returns the error to answer instead, without calling the upstream again.
 */
export async function rerunRefusal(ctx: WorkerContext, job: JobBase): Promise<ApiError | undefined> {
  const tokens = (await ctx.catalog.latest()).tokensByChannel.get(job.channelId) ?? [];
  const [hold, shownOrAnswered] = await Promise.all([
    ctx.db.selectFrom('holds').select('request_id').where('request_id', '=', job.requestId).executeTakeFirst(),
    ctx.redis.exists(ctx.keys.streamStarted(job.requestId), ctx.keys.result(job.requestId)),
    ctx.pool.forget(tokens, job.requestId),
  ]);
  return hold && !shownOrAnswered ? undefined : interrupted();
}

/**
 * Ends a request that will not run (again). If a dead run already kept a final message, that one is the
 * answer and goes out again (the web side may have missed it). Otherwise the request is made unbillable
 * (its hold released; a charge a dead run settled without delivering its answer taken back; whatever a dead
 * run streamed is not billed, as its count died with it) and the error is relayed to the web side.
 */
export async function abandon(ctx: WorkerContext, job: JobBase, error: ApiError): Promise<void> {
  const tokens = (await ctx.catalog.latest()).tokensByChannel.get(job.channelId) ?? [];
  await ctx.pool.forget(tokens, job.requestId);
  const kept = await ctx.redis.get(ctx.keys.result(job.requestId));
  if (kept) {
    await ctx.redis.publish(ctx.keys.relay(job.webId), kept);
    return;
  }
  await voidRequest(ctx.db, job.requestId);
  // the final message also drops the stream-started mark
  await RelayPublisher.forJob(ctx.redis, ctx.keys, job).send({ t: 'error', error: error.toWire() });
}
