import { z } from 'zod';
import { estimateChatPromptTokens } from '../billing/estimate.js';
import { badRequest } from '../http/errors.js';
import type { AppContext } from '../http/state.js';
import type { ChatJobData } from '../queue/jobs.js';
import { admitted, enqueue, type FrontDoor, jobBase } from './admission.js';
import { chatStreamStyle, respondWithResult, respondWithStream } from './relay-response.js';

const contentPart = z.looseObject({ type: z.string() });
const message = z.looseObject({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool', 'function']),
  content: z.union([z.string(), z.array(contentPart), z.null()]).optional(),
});
const positiveInt = z.number().int().positive();

/** OpenAI's chat request; unknown fields pass through to OpenAI-type upstreams untouched. */
export const chatRequestSchema = z.looseObject({
  model: z.string().min(1),
  messages: z.array(message).min(1),
  stream: z.boolean().nullish(),
  stream_options: z.looseObject({ include_usage: z.boolean().optional() }).nullish(),
  max_tokens: positiveInt.nullish(),
  max_completion_tokens: positiveInt.nullish(),
  n: z.number().int().min(1).max(8).nullish(),
  tools: z.array(z.looseObject({ type: z.string(), function: z.looseObject({ name: z.string().min(1) }) })).nullish(),
  functions: z.array(z.looseObject({ name: z.string().min(1) })).nullish(),
  /** text, json_object or json_schema ({name, schema, strict}); each channel says which it honours (providers/registry.ts) */
  response_format: z.looseObject({ type: z.string() }).nullish(),
});

export type ChatRequest = z.infer<typeof chatRequestSchema>;

const hasImages = (body: ChatRequest) =>
  body.messages.some((m) => Array.isArray(m.content) && m.content.some((p) => p.type === 'image_url'));

const requestedOutput = (body: ChatRequest) => body.max_completion_tokens ?? body.max_tokens ?? undefined;

export const chatDoor: FrontDoor<ChatRequest> = {
  endpoint: '/v1/chat/completions',
  modality: 'chat',
  schema: chatRequestSchema,
  demand(body, model) {
    if (!model.vision && hasImages(body)) throw badRequest(`messages: model ${model.id} does not accept image_url parts`);
    if (!model.tools && (body.tools?.length || body.functions?.length)) throw badRequest(`tools: model ${model.id} does not support tools`);
    return { kind: 'chat', body };
  },
  worstCase: (body) => ({ promptTokens: estimateChatPromptTokens(body), requestedOutput: requestedOutput(body), choices: body.n ?? 1 }),
};

/** POST /v1/chat/completions, after admission: the job, then the relayed answer or stream. */
export async function createChatCompletion(ctx: AppContext): Promise<void> {
  const { body, model, reservation } = admitted<ChatRequest>(ctx);
  const stream = body.stream === true;
  const upstreamBody: Record<string, unknown> = { ...body, model: model.upstreamModel };
  if (requestedOutput(body) === undefined) upstreamBody.max_tokens = reservation.maxOutputTokens;
  const job: ChatJobData = {
    ...jobBase(ctx, 'chat'),
    kind: 'chat',
    stream,
    body: upstreamBody,
  };

  const relay = await enqueue(ctx, job);
  if (stream) await respondWithStream(ctx, relay, job, chatStreamStyle(body.stream_options?.include_usage === true));
  else await respondWithResult(ctx, relay, job);
}
