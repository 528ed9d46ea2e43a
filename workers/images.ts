import type { Job } from 'bullmq';
import { usdNumber } from '../src/billing/money.js';
import { ApiError } from '../src/http/errors.js';
import type { ImagesJobData } from '../src/queue/jobs.js';
import type { WorkerContext } from './context.js';
import { charge, type JobSummary, runJob } from './job-kit.js';
import { withUpstream } from './upstream-call.js';

/**
 * One image job: the token's lease is held from submit through the final poll (providers limit concurrent
 * tasks per key), and the job bills the images actually produced. A submitted task is never resubmitted on
 * another token; a failed or timed-out task releases the hold and costs nothing.
 */
export function processImages(ctx: WorkerContext, bullJob: Job<ImagesJobData>, signal: AbortSignal): Promise<JobSummary> {
  const job = bullJob.data;
  return runJob(ctx, job, signal, async (relay) => {
    let submitted = false;
    const result = await withUpstream(
      ctx,
      job,
      signal,
      (adapter, call) => {
        if (!adapter.images) throw new ApiError('upstream_unavailable', "this model's upstream channel does not generate images");
        const request = { prompt: job.prompt, n: job.n, size: job.size, extra: job.extra, pollMs: ctx.config.imagePollMs };
        return adapter.images({ ...request, onSubmitted: () => (submitted = true) }, call);
      },
      () => !submitted,
    );
    const cost = await charge(ctx, job, { promptTokens: 0, completionTokens: 0, images: result.imagesProduced }, false);
    const response = {
      created: Math.floor(Date.now() / 1000),
      data: result.data,
      usage: { image_count: result.imagesProduced, cost: usdNumber(cost) },
    };
    await relay.send({ t: 'done', costNano: cost.toString(), result: response });
    return { status: 'ok', costNano: cost.toString(), estimated: false };
  });
}
