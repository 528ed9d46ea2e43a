import type { Job } from 'bullmq';
import { holdExists } from '../src/billing/holds.js';
import { voidRequest } from '../src/billing/unbillable.js';
import type { ApiError } from '../src/http/errors.js';
import { abortError } from '../src/queue/abort.js';
import type { JobBase } from '../src/queue/jobs.js';
import { RelayPublisher, resendKeptFinal, shownOrAnswered } from '../src/queue/worker-relay.js';
import type { WorkerContext } from './context.js';

/** BullMQ's reason for a job whose workers died more often than `maxStalledCount` allows. */
export const STALLED_TOO_OFTEN = /stalled more than allowable limit/;

export const interrupted = () => abortError('shutdown');

/** A run of a job that BullMQ took over from a worker that died (lock expired, stalled check re-queued it). */
export const isRerun = (job: Job) => job.stalledCounter > 0 || job.attemptsStarted > 1;

/** Every token the job may have leased: those of all its routes' channels. */
async function tokensOf(ctx: WorkerContext, job: JobBase) {
  const catalog = await ctx.catalog.latest();
  return [...new Set(job.routes.map((r) => r.channelId))].flatMap((id) => catalog.tokensByChannel.get(id) ?? []);
}

/**
 * Decides what a re-run may do. It drops the dead run's leases at once (they would expire after leaseMs
 * anyway). It answers the request again only if nothing of it is settled, shown or answered yet: the hold
 * is still there (not settled or released), no chunk reached the client (a second answer would be spliced
 * onto the first) and no final message went out (the client may already have its answer or its error).
 * Otherwise it returns the error to answer instead, without calling the upstream again.
 */
export async function rerunRefusal(ctx: WorkerContext, job: JobBase): Promise<ApiError | undefined> {
  const tokens = await tokensOf(ctx, job);
  const [held, shown] = await Promise.all([
    holdExists(ctx.db, job.requestId),
    shownOrAnswered(ctx.redis, ctx.keys, job.requestId),
    ctx.pool.forget(tokens, job.requestId),
  ]);
  return held && !shown ? undefined : interrupted();
}

/**
 * Ends a request that will not run (again). If a dead run already kept a final message, that one is the
 * answer and goes out again (the web side may have missed it). Otherwise the request is made unbillable
 * (its hold released; a charge a dead run settled without delivering its answer taken back; whatever a dead
 * run streamed is not billed, as its count died with it) and the error is relayed to the web side.
 */
export async function abandon(ctx: WorkerContext, job: JobBase, error: ApiError): Promise<void> {
  await ctx.pool.forget(await tokensOf(ctx, job), job.requestId);
  if (await resendKeptFinal(ctx.redis, ctx.keys, job)) return;
  await voidRequest(ctx.db, job.requestId);
  // the final frame also drops the stream-started mark
  await new RelayPublisher(ctx.redis, ctx.keys, job, ctx.workerId).send({ t: 'error', error: error.toWire() });
}
