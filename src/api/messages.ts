/**
 * `POST /v1/messages` and `POST /v1/messages/count_tokens`: Anthropic's Messages API (SPEC §1b) through chat's
 * admission, queue, workers and ledger. The worker answers in Anthropic's format (workers/messages.ts); errors
 * on these routes have Anthropic's shape (src/http/error-shape.ts).
 */
import { z } from 'zod';
import { formatUsd } from '../billing/money.js';
import { anthropicErrorBody } from '../http/error-shape.js';
import { badRequest } from '../http/errors.js';
import type { AppContext } from '../http/state.js';
import type { AnthropicHeaders, ChatJobData } from '../queue/jobs.js';
import { providerFor } from '../upstream/providers/registry.js';
import { countMessagesTokens, estimateMessagesPromptTokens } from '../wire/messages/count.js';
import { admitted, admittedWithoutHold, enqueue, type FrontDoor, jobBase } from './admission.js';
import { respondWithResult, respondWithStream, type StreamStyle } from './relay-response.js';

const block = z.looseObject({ type: z.string() }).superRefine((b, ctx) => {
  if (b.type === 'text' && typeof b.text !== 'string') ctx.addIssue({ code: 'custom', path: ['text'], message: 'must be a string' });
});
const content = z.union([z.string(), z.array(block)]);
/** As Anthropic answers: every message has content, but the final assistant one (a prefill may be empty). */
const turns = z
  .array(z.looseObject({ role: z.enum(['user', 'assistant']), content }))
  .min(1)
  .superRefine((messages, ctx) => {
    messages.forEach((m, i) => {
      const last = i === messages.length - 1 && m.role === 'assistant';
      if (m.content.length === 0 && !last)
        ctx.addIssue({ code: 'custom', path: [i, 'content'], message: 'must not be empty (only a final assistant message may be)' });
    });
  });
const positiveInt = z.number().int().positive();

/** Anthropic's Messages prompt (count_tokens' body); unknown fields pass through to Anthropic upstreams untouched. */
export const promptSchema = z.looseObject({
  model: z.string().min(1),
  messages: turns,
  system: content.optional(),
  tools: z.array(z.looseObject({ name: z.string().min(1), input_schema: z.looseObject({}).optional() })).optional(),
  tool_choice: z.looseObject({ type: z.enum(['auto', 'any', 'tool', 'none']) }).optional(),
  thinking: z.looseObject({ type: z.string(), budget_tokens: positiveInt.optional() }).optional(),
});

/** Anthropic's Messages request. */
export const messagesRequestSchema = promptSchema.extend({
  max_tokens: positiveInt,
  stream: z.boolean().optional(),
  stop_sequences: z.array(z.string()).optional(),
  temperature: z.number().min(0).max(1).optional(),
  top_p: z.number().min(0).max(1).optional(),
});

type MessagesRequest = z.infer<typeof messagesRequestSchema>;

/**
 * The body as sent upstream: max_tokens lowered to `limit` (what the hold covers: at most the model's
 * max_output_tokens). The thinking budget is left as asked: a translation reads the effort from it, and an
 * Anthropic upstream gets it below max_tokens (providers/anthropic).
 */
function limitedBody(body: MessagesRequest, limit: number): MessagesRequest {
  return body.max_tokens <= limit ? body : { ...body, max_tokens: limit };
}

type CountTokensRequest = z.infer<typeof promptSchema>;

const hasImages = (body: CountTokensRequest) =>
  body.messages.some((m) => Array.isArray(m.content) && m.content.some((b) => b.type === 'image'));

export const messagesDoor: FrontDoor<MessagesRequest> = {
  endpoint: '/v1/messages',
  modality: 'chat',
  schema: messagesRequestSchema,
  demand(body, model) {
    if (!model.vision && hasImages(body)) throw badRequest(`messages: model ${model.id} does not accept image blocks`);
    if (!model.tools && body.tools?.length) throw badRequest(`tools: model ${model.id} does not support tools`);
    return { kind: 'messages', body };
  },
  worstCase: (body) => ({ promptTokens: estimateMessagesPromptTokens(body), requestedOutput: body.max_tokens, choices: 1 }),
};

export const countTokensDoor: FrontDoor<CountTokensRequest> = {
  endpoint: '/v1/messages/count_tokens',
  modality: 'chat',
  schema: promptSchema,
  demand: (body) => ({ kind: 'messages', body }),
  worstCase: () => ({ promptTokens: 0, choices: 1 }),
};

/** Anthropic's streams: `event: ping` keep-alives, `event: error` with Anthropic's error, no end marker. */
const messagesStreamStyle: StreamStyle = {
  includeUsage: false,
  doneMarker: false,
  keepAlive: (sse) => sse.event('ping', { type: 'ping' }),
  errorEvent: (error) => ({ event: 'error', data: anthropicErrorBody(error) }),
};

/** The client's `anthropic-version` and `anthropic-beta` (forwarded to Anthropic upstreams). */
function anthropicHeaders(ctx: AppContext): AnthropicHeaders {
  const version = ctx.get('anthropic-version');
  const beta = ctx.get('anthropic-beta');
  return { ...(version !== '' ? { version } : {}), ...(beta !== '' ? { beta } : {}) };
}

/** POST /v1/messages, after admission: the job, then the relayed answer or stream. */
export async function createMessage(ctx: AppContext): Promise<void> {
  const { body, model, reservation } = admitted<MessagesRequest>(ctx);
  const stream = body.stream === true;
  const job: ChatJobData = {
    ...jobBase(ctx, 'chat'),
    kind: 'chat',
    wire: 'messages',
    stream,
    body: { ...limitedBody(body, reservation.maxOutputTokens), model: model.upstreamModel },
    anthropic: anthropicHeaders(ctx),
  };
  const relay = await enqueue(ctx, job);
  if (stream) await respondWithStream(ctx, relay, job, messagesStreamStyle);
  else await respondWithResult(ctx, relay, job);
}

/**
 * POST /v1/messages/count_tokens: `{"input_tokens": n}`, counted by RPM, billed nothing. Where the home
 * route's channel is Anthropic, its upstream counts (a job: every upstream call holds a token's lease);
 * elsewhere the gateway counts here with its own tokenizer.
 */
export async function countMessageTokens(ctx: AppContext): Promise<void> {
  const { body, channel, model } = admittedWithoutHold<CountTokensRequest>(ctx);
  if (!providerFor(channel.type).capabilities.messages) {
    ctx.set('x-eastx-cost-usd', formatUsd(0n));
    ctx.body = { input_tokens: countMessagesTokens(body) };
    return;
  }
  const job: ChatJobData = {
    ...jobBase(ctx, 'chat', false),
    kind: 'chat',
    wire: 'messages',
    stream: false,
    countTokens: true,
    body: { ...body, model: model.upstreamModel },
    anthropic: anthropicHeaders(ctx),
  };
  await respondWithResult(ctx, await enqueue(ctx, job), job);
}
