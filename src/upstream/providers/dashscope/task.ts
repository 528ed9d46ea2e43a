import { setTimeout as sleep } from 'node:timers/promises';
import { UpstreamError } from '../../errors.js';
import { readJson, send, transportFailure } from '../http.js';
import type { ImageRequest, ImagesResult, UpstreamCall } from '../types.js';
import { imageTaskRequest } from './request.js';
import { imagesOf, type TaskResponse, taskResponse } from './response.js';

/** Poll waits grow by this factor per poll, up to this multiple of the first wait (500 ms → 2 s by default). */
const POLL_GROWTH = 1.5;
const MAX_POLL_MULTIPLE = 4;
/** Status polls that may fail in a row (5xx, 429, connect) before the task is given up. */
const POLL_FAILURES_TOLERATED = 3;
const WAITING_STATES = new Set(['PENDING', 'RUNNING', 'SUSPENDED']);

const authHeaders = (call: UpstreamCall) => ({ authorization: `Bearer ${call.secret}` });

async function pause(ms: number, signal: AbortSignal): Promise<void> {
  try {
    await sleep(ms, undefined, { signal });
  } catch (err) {
    throw transportFailure(err, signal);
  }
}

async function submitTask(request: ImageRequest, call: UpstreamCall): Promise<string> {
  const response = await send(
    `${call.baseUrl}/api/v1/services/aigc/text2image/image-synthesis`,
    { headers: { ...authHeaders(call), 'x-dashscope-async': 'enable' }, body: imageTaskRequest(request, call.upstreamModel) },
    call.signal,
  );
  const task = await readJson(response, call.signal, taskResponse);
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
      const response = await send(
        `${call.baseUrl}/api/v1/tasks/${encodeURIComponent(taskId)}`,
        { method: 'GET', headers: authHeaders(call) },
        call.signal,
      );
      task = await readJson(response, call.signal, taskResponse);
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
    throw new UpstreamError('task_failed', task.output?.message || `the image task ended ${status}`, {
      providerCode: task.output?.code || status,
    });
  }
}

/** DashScope text-to-image through the async task API (SPEC §4): submit, poll, collect the image URLs. */
export async function generateImages(request: ImageRequest, call: UpstreamCall): Promise<ImagesResult> {
  const taskId = await submitTask(request, call);
  request.onSubmitted?.();
  return imagesOf(await awaitTask(taskId, request, call));
}
