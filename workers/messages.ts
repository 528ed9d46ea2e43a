import { ApiError } from '../src/http/errors.js';
import type { ChatJobData } from '../src/queue/jobs.js';
import type { WorkerContext } from './context.js';
import { type JobSummary, runJob } from './job-kit.js';

/** A chat job whose client speaks Anthropic's Messages API (SPEC §1b). */
export function processMessages(ctx: WorkerContext, job: ChatJobData, signal: AbortSignal): Promise<JobSummary> {
  return runJob(ctx, job, signal, () => Promise.reject(new ApiError('internal_error', 'the Messages API is not served yet')));
}
