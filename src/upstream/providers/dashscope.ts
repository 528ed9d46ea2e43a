import { setTimeout as sleep } from 'node:timers/promises';
import { UpstreamError } from '../errors.js';
import { readJson, send, transportFailure } from './http.js';
import { openaiCompatible } from './openai.js';
import type { ImageRequest, ImagesResult, ProviderAdapter, UpstreamCall } from './types.js';

/** Poll waits grow by this factor per poll, up to this multiple of the first wait (500 ms → 2 s by default). */
const POLL_GROWTH = 1.5;
const MAX_POLL_MULTIPLE = 4;
/** Status polls that may fail in a row (5xx, 429, connect) before the task is given up. */
const POLL_FAILURES_TOLERATED = 3;
const WAITING_STATES = new Set(['PENDING', 'RUNNING', 'SUSPENDED']);

interface TaskResult {
  url?: string;
  actual_prompt?: string;
  code?: string;
  message?: string;
}

/** DashScope's task answer, for both the submit and the status poll. */
interface TaskResponse {
  output?: { task_id?: string; task_status?: string; code?: string; message?: string; results?: TaskResult[] };
  usage?: { image_count?: number };
}

const authHeaders = (call: UpstreamCall) => ({ authorization: `Bearer ${call.secret}` });

async function pause(ms: number, signal: AbortSignal): Promise<void> {
  try {
    await sleep(ms, undefined, { signal });
  } catch (err) {
    throw transportFailure(err, signal);
  }
}

async function submitTask(request: ImageRequest, call: UpstreamCall): Promise<string> {
  const negative = request.extra.negative_prompt;
  const response = await send(
    `${call.baseUrl}/api/v1/services/aigc/text2image/image-synthesis`,
    {
      headers: { ...authHeaders(call), 'x-dashscope-async': 'enable' },
      body: {
        model: call.upstreamModel,
        input: { prompt: request.prompt, ...(typeof negative === 'string' ? { negative_prompt: negative } : {}) },
        parameters: { size: request.size.replace('x', '*'), n: request.n },
      },
    },
    call.signal,
  );
  const task = await readJson<TaskResponse>(response, call.signal);
  const taskId = task.output?.task_id;
  if (!taskId) throw new UpstreamError('protocol', 'the upstream accepted the image task without a task_id', { status: 200 });
  return taskId;
}

/** Polls the task until it ends; a SUCCEEDED task is returned, any other end becomes a `task_failed` error. */
async function awaitTask(taskId: string, request: ImageRequest, call: UpstreamCall): Promise<TaskResponse> {
  let wait = request.pollMs;
  let failuresInARow = 0;
  for (;;) {
    await pause(wait, call.signal);
    wait = Math.min(wait * POLL_GROWTH, request.pollMs * MAX_POLL_MULTIPLE);
    let task: TaskResponse;
    try {
      const response = await send(`${call.baseUrl}/api/v1/tasks/${encodeURIComponent(taskId)}`, { method: 'GET', headers: authHeaders(call) }, call.signal);
      task = await readJson<TaskResponse>(response, call.signal);
    } catch (err) {
      // A status poll that fails for a moment does not lose the task: ask again (the deadline bounds it).
      const transient = err instanceof UpstreamError && err.retryable && !err.credentialsRejected;
      if (transient && ++failuresInARow <= POLL_FAILURES_TOLERATED) continue;
      throw err;
    }
    failuresInARow = 0;
    const status = task.output?.task_status ?? 'UNKNOWN';
    if (status === 'SUCCEEDED') return task;
    if (WAITING_STATES.has(status)) continue;
    throw new UpstreamError('task_failed', task.output?.message || `the image task ended ${status}`, { providerCode: task.output?.code || status });
  }
}

/** DashScope text-to-image through the async task API (SPEC §4): submit, poll, collect the image URLs. */
async function generateImages(request: ImageRequest, call: UpstreamCall): Promise<ImagesResult> {
  const taskId = await submitTask(request, call);
  request.onSubmitted?.();
  const task = await awaitTask(taskId, request, call);
  const results = task.output?.results ?? [];
  const data = results
    .filter((r): r is TaskResult & { url: string } => typeof r.url === 'string' && r.url !== '')
    .map((r) => ({ url: r.url, ...(r.actual_prompt ? { revised_prompt: r.actual_prompt } : {}) }));
  if (data.length === 0) {
    const failed = results.find((r) => r.code);
    throw new UpstreamError('task_failed', failed?.message || 'the image task produced no image', { providerCode: failed?.code || 'NoImage' });
  }
  return { data, imagesProduced: task.usage?.image_count ?? data.length };
}

/** Chat and embeddings through DashScope's OpenAI-compatible mode; images through its native task API. */
export const dashscopeAdapter: ProviderAdapter = {
  ...openaiCompatible((baseUrl) => `${baseUrl}/compatible-mode/v1`),
  images: generateImages,
};
