import type { Job } from 'bullmq';
import { usdNumber } from '../src/billing/money.js';
import { ApiError } from '../src/http/errors.js';
import type { ImagesJobData } from '../src/queue/jobs.js';
import { download } from '../src/upstream/download.js';
import { UpstreamError } from '../src/upstream/errors.js';
import type { ImagesResult } from '../src/upstream/providers/types.js';
import type { WorkerContext } from './context.js';
import { charge, type JobSummary, runJob } from './job-kit.js';
import { withUpstream } from './upstream-call.js';

type ImageData = { url?: string; b64_json?: string; revised_prompt?: string };

/**
 * `b64_json`: each produced image downloaded (at most `imageMaxBytes` each, within the job's deadline: the
 * job's signal aborts it) and answered as base64. A download that fails fails the request, uncharged.
 */
async function asBase64(ctx: WorkerContext, result: ImagesResult, signal: AbortSignal): Promise<ImageData[]> {
  try {
    return await Promise.all(
      result.data.map(async ({ url, revised_prompt }) => {
        const { bytes } = await download(url, ctx.config.imageMaxBytes, signal);
        return { b64_json: bytes.toString('base64'), ...(revised_prompt !== undefined && { revised_prompt }) };
      }),
    );
  } catch (err) {
    throw err instanceof UpstreamError ? err.toApiError() : err;
  }
}

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
    const data: ImageData[] = job.responseFormat === 'b64_json' ? await asBase64(ctx, result, signal) : result.data;
    const cost = await charge(ctx, job, { promptTokens: 0, completionTokens: 0, images: result.imagesProduced }, false);
    const response = {
      created: Math.floor(Date.now() / 1000),
      data,
      // OpenAI's usage fields (DashScope reports no tokens for images: zeros), then eastx's count and cost
      usage: {
        input_tokens: 0,
        output_tokens: 0,
        total_tokens: 0,
        input_tokens_details: { text_tokens: 0, image_tokens: 0 },
        image_count: result.imagesProduced,
        cost: usdNumber(cost),
      },
    };
    await relay.send({ t: 'done', costNano: cost.toString(), result: response });
    return { status: 'ok', costNano: cost.toString(), estimated: false };
  });
}
