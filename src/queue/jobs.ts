import type { Prices } from '../billing/money.js';
import type { ModelRoute } from '../catalog/catalog.js';
import type { Config } from '../config.js';
import type { TraceCarrier } from '../telemetry.js';
import type { ResponsesEcho } from '../wire/responses/response.js';

/**
 * Web → worker: the job. Its id is the request id (= the ledger's idempotency key). Its data says who pays,
 * what was held, the model's routes (channels and upstream model names) and the request to send; never a key
 * or upstream token (workers read those from the catalog). Money travels as decimal strings, since job data
 * is JSON.
 */

/**
 * One BullMQ queue per channel keeps a slow or cooling provider from blocking the others. A job waits in its
 * home route's channel queue; its worker may lease a token of any of its routes (src/upstream/routing.ts).
 */
export const channelQueueName = (channelId: number) => `channel-${channelId}`;

/** The maintenance queue whose repeatable job probes unhealthy channels (one at a time across workers). */
export const PROBE_QUEUE = 'health-probe';

export type JobKind = 'chat' | 'embeddings' | 'images';

export interface JobPrices {
  inputMicro: string;
  outputMicro: string;
  imageNano: string;
  /** absent (also in jobs enqueued before cache prices existed) = the input price */
  cacheReadMicro?: string;
  cacheWriteMicro?: string;
}

export interface JobBase {
  requestId: string;
  /** The web process whose relay channel gets this job's messages. */
  webId: string;
  userId: number;
  keyId: number;
  /** public model id (ledger, responses) */
  model: string;
  /** The home route's channel: the queue the job waits in (and the one its hold names for the sweeper). */
  channelId: number;
  /** The routes that can serve this request, in trying order (priority descending); the home one among them. */
  routes: ModelRoute[];
  /** Index of the home route in `routes` (drawn by weight at the web; preferred while it has a free token). */
  homeRoute: number;
  prices: JobPrices;
  holdNano: string;
  /** epoch ms after which the upstream call is abandoned with upstream_timeout */
  deadlineAt: number;
  /** the request's trace (W3C traceparent), only while tracing is on (src/telemetry.ts) */
  trace?: TraceCarrier;
}

/**
 * The wire format a chat job's client speaks (SPEC §1b). The worker answers in it (results, stream chunks
 * with their SSE event names, closing events); the web relays frames verbatim.
 */
export type Wire = 'chat' | 'messages' | 'responses';

/** `anthropic-version` and `anthropic-beta` as the client sent them (header values, never credentials). */
export interface AnthropicHeaders {
  version?: string;
  beta?: string;
}

export interface ChatJobData extends JobBase {
  kind: 'chat';
  /** absent = chat */
  wire?: Wire;
  stream: boolean;
  /**
   * The request in the client's wire format: OpenAI's chat request for `chat` (model already the upstream
   * name), Anthropic's Messages body for `messages`, the translated chat request for `responses` (see ResponsesJob).
   */
  body: Record<string, unknown>;
  /** `messages` only: the client's Anthropic headers, forwarded to an Anthropic upstream. */
  anthropic?: AnthropicHeaders;
  /** `messages` only: count the prompt's tokens (`/v1/messages/count_tokens`); nothing is held or billed. */
  countTokens?: boolean;
  /** `responses` only: what the response object echoes, and what to store. */
  responses?: ResponsesJob;
}

/**
 * A Responses request is translated to chat at the web (its hold is the chat body's worst case, previous
 * conversation included), so a `responses` job's `body` is that chat request; this says how to answer it.
 */
export interface ResponsesJob {
  echo: ResponsesEcho;
  /** `body.messages` from this index on is the conversation to store (before it: this turn's instructions) */
  conversationFrom: number;
}

export interface EmbeddingsJobData extends JobBase {
  kind: 'embeddings';
  body: Record<string, unknown>;
  encodingFormat: 'float' | 'base64';
}

export interface ImagesJobData extends JobBase {
  kind: 'images';
  prompt: string;
  n: number;
  size: string;
  extra: Record<string, unknown>;
  /** `b64_json`: the worker downloads each image and answers its bytes (absent = url) */
  responseFormat?: 'url' | 'b64_json';
}

export type JobData = ChatJobData | EmbeddingsJobData | ImagesJobData;

export const encodePrices = (p: Prices): JobPrices => ({
  inputMicro: p.inputMicro.toString(),
  outputMicro: p.outputMicro.toString(),
  imageNano: p.imageNano.toString(),
  ...(p.cacheReadMicro !== undefined && { cacheReadMicro: p.cacheReadMicro.toString() }),
  ...(p.cacheWriteMicro !== undefined && { cacheWriteMicro: p.cacheWriteMicro.toString() }),
});

export const decodePrices = (p: JobPrices): Prices => ({
  inputMicro: BigInt(p.inputMicro),
  outputMicro: BigInt(p.outputMicro),
  imageNano: BigInt(p.imageNano),
  ...(p.cacheReadMicro !== undefined && { cacheReadMicro: BigInt(p.cacheReadMicro) }),
  ...(p.cacheWriteMicro !== undefined && { cacheWriteMicro: BigInt(p.cacheWriteMicro) }),
});

/**
 * The deadline rule: a job's upstream work must end by `deadlineAt` (set when it is enqueued: image tasks get
 * IMAGE_DEADLINE_MS, chat and embeddings CHAT_DEADLINE_MS); the worker aborts it then with `timeout`. The web
 * side waits ANSWER_GRACE_MS longer for the job's final frame before it decides the request's fate itself.
 */
export const deadlineFor = (kind: JobKind, config: Pick<Config, 'chatDeadlineMs' | 'imageDeadlineMs'>, now = Date.now()) =>
  now + (kind === 'images' ? config.imageDeadlineMs : config.chatDeadlineMs);
export const ANSWER_GRACE_MS = 30_000;
export const msUntilDeadline = (job: Pick<JobBase, 'deadlineAt'>) => Math.max(0, job.deadlineAt - Date.now());
/**
 * How long a job's marks for its re-runs (stream started, run claimed) live: past the deadline by a minute,
 * so a re-run never mistakes a run that ends late for no run at all.
 */
export const markTtlMs = (job: Pick<JobBase, 'deadlineAt'>) => msUntilDeadline(job) + 60_000;

/** Bodies above this size are not kept in Redis once their job is done (a 20 MB vision request × 2000…). */
const LARGE_BODY_BYTES = 256 * 1024;

/**
 * How long Bull Board keeps finished jobs (seconds, and at most `count` per queue): long enough for an
 * operator to look into a problem, short enough that prompts in job data do not pile up in Redis. A
 * completed job's return value summarises tokens and cost; a failed one's reason is the SPEC §2 message.
 */
export function retentionFor(bodyBytes: number) {
  if (bodyBytes > LARGE_BODY_BYTES) return { removeOnComplete: true, removeOnFail: { age: 3600, count: 50 } };
  return { removeOnComplete: { age: 3600, count: 2000 }, removeOnFail: { age: 24 * 3600, count: 5000 } };
}
