import { z } from 'zod';
import { estimateChatPromptTokens } from '../billing/estimate.js';
import { badRequest } from '../http/errors.js';
import type { AppContext } from '../http/state.js';
import type { ChatJobData } from '../queue/jobs.js';
import { admitted, enqueue, type FrontDoor, jobBase } from './admission.js';
import { chatStreamStyle, respondWithResult, respondWithStream } from './relay-response.js';

/** A content part: text and image_url parts as OpenAI requires them; other types go to the upstream to judge. */
const contentPart = z.looseObject({ type: z.string() }).superRefine((part, ctx) => {
  if (part.type === 'text' && typeof part.text !== 'string') ctx.addIssue({ code: 'custom', path: ['text'], message: 'must be a string' });
  if (part.type === 'image_url' && typeof (part.image_url as { url?: unknown } | undefined)?.url !== 'string')
    ctx.addIssue({ code: 'custom', path: ['image_url', 'url'], message: 'must be a string' });
});
/** Roles whose content OpenAI requires (an assistant's may be null beside tool_calls). */
const CONTENT_REQUIRED = new Set(['system', 'developer', 'user', 'tool']);
const message = z
  .looseObject({
    role: z.enum(['system', 'developer', 'user', 'assistant', 'tool', 'function']),
    content: z.union([z.string(), z.array(contentPart), z.null()]).optional(),
  })
  .superRefine((m, ctx) => {
    if (!CONTENT_REQUIRED.has(m.role)) return;
    if (m.content === undefined || m.content === null)
      ctx.addIssue({ code: 'custom', path: ['content'], message: `is required in a ${m.role} message` });
    else if (Array.isArray(m.content) && m.content.length === 0)
      ctx.addIssue({ code: 'custom', path: ['content'], message: 'must not be an empty array' });
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
  temperature: z.number().nullish(),
  top_p: z.number().nullish(),
  tools: z.array(z.looseObject({ type: z.string(), function: z.looseObject({ name: z.string().min(1) }) })).nullish(),
  functions: z.array(z.looseObject({ name: z.string().min(1) })).nullish(),
  /** text, json_object or json_schema ({name, schema, strict}); each channel says which it honours (providers/registry.ts) */
  response_format: z.looseObject({ type: z.string() }).nullish(),
});

export type ChatRequest = z.infer<typeof chatRequestSchema>;

const hasImages = (body: ChatRequest) =>
  body.messages.some((m) => Array.isArray(m.content) && m.content.some((p) => p.type === 'image_url'));

/** The client's output limit: the smaller of the two where both are given (an upstream may honour either). */
function requestedOutput(body: ChatRequest): number | undefined {
  const limits = [body.max_completion_tokens, body.max_tokens].filter((limit): limit is number => limit != null);
  return limits.length > 0 ? Math.min(...limits) : undefined;
}

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
  // the limit the hold covers goes up in every field the client gave (a larger one would outrun the hold)
  if (requestedOutput(body) === undefined) upstreamBody.max_tokens = reservation.maxOutputTokens;
  for (const field of ['max_tokens', 'max_completion_tokens'] as const)
    if (body[field] != null) upstreamBody[field] = reservation.maxOutputTokens;
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
