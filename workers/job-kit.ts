import { releaseHold, settle } from '../src/billing/settlement.js';
import type { Prices, Usage } from '../src/billing/money.js';
import { ApiError } from '../src/http/errors.js';
import type { JobBase, JobPrices } from '../src/queue/jobs.js';
import { RelayPublisher } from '../src/queue/relay.js';
import type { WorkerContext } from './context.js';

export const toPrices = (p: JobPrices): Prices => ({
  inputMicro: BigInt(p.inputMicro),
  outputMicro: BigInt(p.outputMicro),
  imageNano: BigInt(p.imageNano),
});

export function asApiError(err: unknown, signal: AbortSignal): ApiError {
  if (err instanceof ApiError) return err;
  if (signal.aborted) {
    const timedOut = (signal.reason as { failure?: string } | undefined)?.failure === 'timeout';
    return timedOut
      ? new ApiError('upstream_timeout', 'the upstream did not answer before the deadline')
      : new ApiError('upstream_error', 'the request was cancelled', { fields: { upstream_status: 0 } });
  }
  return new ApiError('internal_error', 'the worker failed while processing the request');
}

export interface JobSummary {
  status: 'ok' | 'failed';
  promptTokens?: number;
  completionTokens?: number;
  costNano?: string;
  estimated?: boolean;
}

/** Settles the job's cost (or releases its hold) and returns the charged amount. */
export async function charge(ctx: WorkerContext, job: JobBase, usage: Usage, estimated: boolean): Promise<bigint> {
  const outcome = await settle(ctx.db, {
    requestId: job.requestId,
    userId: job.userId,
    keyId: job.keyId,
    model: job.model,
    prices: toPrices(job.prices),
    usage,
    holdNano: BigInt(job.holdNano),
    estimated,
  });
  return outcome.costNano;
}

/**
 * The frame of every job: `work` gets the job's relay; if it fails, the hold is released (whatever was
 * produced was already settled by `work`), the SPEC §2 error is relayed to the web side, and the error is
 * rethrown so BullMQ records the job as failed.
 */
export async function runJob(
  ctx: WorkerContext,
  job: JobBase,
  signal: AbortSignal,
  work: (relay: RelayPublisher) => Promise<JobSummary>,
): Promise<JobSummary> {
  const relay = RelayPublisher.forJob(ctx.redis, ctx.keys, job);
  try {
    return await work(relay);
  } catch (err) {
    await releaseHold(ctx.db, job.requestId);
    const error = asApiError(err, signal);
    await relay.send({ t: 'error', error: error.toWire() });
    throw error;
  }
}
