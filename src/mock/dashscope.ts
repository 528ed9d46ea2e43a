/**
 * DashScope native API: text-to-image through the async task API.
 *   POST /api/v1/services/aigc/text2image/image-synthesis   (X-DashScope-Async: enable)
 *   GET  /api/v1/tasks/{task_id}
 * (DashScope's OpenAI-compatible chat/embeddings live in openai.ts.)
 */
import { randomUUID } from 'node:crypto';
import type { Behavior, ImageFailSpec } from './behavior.js';
import { asInt, asString, bearerToken, type Ctx, headerValue, isObject, type JsonObject, sendJson } from './http.js';
import type { ErrorOptions, Provider, Route } from './route.js';

const ERROR_CODES: Record<number, string> = {
  400: 'InvalidParameter',
  401: 'InvalidApiKey',
  403: 'AccessDenied',
  404: 'NotFound',
  429: 'Throttling.RateQuota',
  500: 'InternalError',
};

export const dashscopeNativeProvider: Provider = {
  name: 'dashscope-native',
  secretOf: bearerToken,
  missingKeyMessage: 'No API-key provided.',
  sendError(ctx: Ctx, status: number, message: string, opts: ErrorOptions = {}) {
    const code = opts.type ?? ERROR_CODES[status] ?? (status >= 500 ? 'InternalError' : 'InvalidParameter');
    sendJson(ctx, status, { code, message, request_id: randomUUID() }, opts.headers);
  },
};

// ---------------------------------------------------------------- tasks

const DEFAULT_TASK_POLLS = 2;
const PARTIAL_FAILURE = {
  code: 'InternalError.Timeout',
  message: 'An internal timeout error has occured during execution, please try again later or contact service support.',
};

interface ImageTask {
  id: string;
  prompt: string;
  n: number;
  submittedAt: Date;
  /** behaviour fixed at submit time */
  pollsBeforeFinal: number;
  fail: ImageFailSpec | undefined;
  produced: number;
  /** query of the result URLs (what the image download answers) */
  download: string;
  polls: number;
  /** releases the submitting secret's in-flight slot; called once the final state was fetched */
  release: () => void;
}

export class ImageTaskStore {
  readonly #tasks = new Map<string, ImageTask>();

  add(task: ImageTask): void {
    this.#tasks.set(task.id, task);
  }

  get(id: string): ImageTask | undefined {
    return this.#tasks.get(id);
  }
}

function timestamp(date: Date): string {
  return date.toISOString().replace('T', ' ').replace('Z', '');
}

function revisedPrompt(prompt: string): string {
  return `${prompt}, highly detailed, soft natural lighting, sharp focus, rich colors (revised by mock prompt extender)`;
}

/** The task's `output` after one more poll (advances the poll counter). */
function pollOutput(task: ImageTask, publicUrl: string): { output: JsonObject; usage?: JsonObject } {
  task.polls += 1;
  const base = { task_id: task.id, submit_time: timestamp(task.submittedAt) };
  if (task.polls <= task.pollsBeforeFinal) {
    const status = task.polls === 1 ? 'PENDING' : 'RUNNING';
    return { output: { ...base, task_status: status, ...(status === 'RUNNING' ? { scheduled_time: timestamp(new Date()) } : {}) } };
  }
  task.release();
  const times = { ...base, scheduled_time: timestamp(task.submittedAt), end_time: timestamp(new Date()) };
  const failure = task.fail ?? (task.produced === 0 ? PARTIAL_FAILURE : undefined);
  if (failure) return { output: { ...times, task_status: 'FAILED', code: failure.code, message: failure.message } };
  const results: JsonObject[] = [];
  for (let i = 0; i < task.n; i++) {
    results.push(
      i < task.produced
        ? {
            url: `${publicUrl}/__mock/images/${task.id}/${i}.png${task.download}`,
            orig_prompt: task.prompt,
            actual_prompt: revisedPrompt(task.prompt),
          }
        : { ...PARTIAL_FAILURE },
    );
  }
  return {
    output: {
      ...times,
      task_status: 'SUCCEEDED',
      results,
      task_metrics: { TOTAL: task.n, SUCCEEDED: task.produced, FAILED: task.n - task.produced },
    },
    usage: { image_count: task.produced },
  };
}

// ---------------------------------------------------------------- handlers

function requireAsync(ctx: Ctx): boolean {
  if (headerValue(ctx.req, 'x-dashscope-async').toLowerCase() === 'enable') return true;
  // the real service answers AccessDenied here; the status is 400 as the gateway expects
  dashscopeNativeProvider.sendError(ctx, 400, 'current user api does not support synchronous calls', { type: 'AccessDenied' });
  return false;
}

interface SubmitParams {
  model: string;
  prompt: string;
  size: string;
  n: number;
}

function parseSubmit(body: unknown): SubmitParams | string {
  if (!isObject(body)) return 'request body must be a JSON object';
  const model = asString(body.model);
  if (model === undefined) return 'Model not specified';
  const input = isObject(body.input) ? body.input : {};
  const prompt = asString(input.prompt);
  if (prompt === undefined || prompt.trim() === '') return 'Field required: input.prompt';
  const parameters = isObject(body.parameters) ? body.parameters : {};
  const size = parameters.size === undefined ? '1024*1024' : asString(parameters.size);
  if (size === undefined || !/^[1-9]\d*\*[1-9]\d*$/.test(size)) return `The size is not match the format W*H: ${String(parameters.size)}`;
  const n = parameters.n === undefined ? 1 : asInt(parameters.n);
  if (n === undefined || n < 1 || n > 4) return 'parameters.n must be an integer between 1 and 4';
  return { model, prompt, size, n };
}

function downloadQuery(download: Behavior['imageDownload']): string {
  const query = new URLSearchParams();
  if (download?.bytes !== undefined) query.set('bytes', String(download.bytes));
  if (download?.status !== undefined) query.set('status', String(download.status));
  return query.size > 0 ? `?${query}` : '';
}

function submitHandler(tasks: ImageTaskStore) {
  return (ctx: Ctx, body: unknown): void => {
    const params = parseSubmit(body);
    if (typeof params === 'string') return dashscopeNativeProvider.sendError(ctx, 400, params);
    const { behavior } = ctx;
    const id = randomUUID();
    tasks.add({
      id,
      prompt: params.prompt,
      n: params.n,
      submittedAt: new Date(),
      pollsBeforeFinal: behavior.imageTaskPolls ?? DEFAULT_TASK_POLLS,
      fail: behavior.imageFail,
      produced: Math.min(params.n, Math.max(0, behavior.imagesProduced ?? params.n)),
      download: downloadQuery(behavior.imageDownload),
      polls: 0,
      release: ctx.detachSlot(),
    });
    sendJson(ctx, 200, { output: { task_id: id, task_status: 'PENDING' }, request_id: randomUUID() });
  };
}

function taskHandler(tasks: ImageTaskStore) {
  return (ctx: Ctx, _body: unknown, params: string[]): void => {
    const id = decodeURIComponent(params[0] ?? '');
    const task = tasks.get(id);
    if (!task) {
      sendJson(ctx, 200, { request_id: randomUUID(), output: { task_id: id, task_status: 'UNKNOWN' } });
      return;
    }
    const { output, usage } = pollOutput(task, ctx.publicUrl);
    sendJson(ctx, 200, { request_id: randomUUID(), output, ...(usage ? { usage } : {}) });
  };
}

export function dashscopeImageRoutes(tasks: ImageTaskStore): Route[] {
  return [
    {
      method: 'POST',
      pattern: /^\/api\/v1\/services\/aigc\/text2image\/image-synthesis$/,
      provider: dashscopeNativeProvider,
      precheck: requireAsync,
      handle: submitHandler(tasks),
    },
    { method: 'GET', pattern: /^\/api\/v1\/tasks\/([^/]+)$/, provider: dashscopeNativeProvider, work: false, handle: taskHandler(tasks) },
  ];
}
