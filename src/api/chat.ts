import { z } from 'zod';
import { estimateChatPromptTokens } from '../billing/estimate.js';
import { parseBody } from '../http/body.js';
import { badRequest } from '../http/errors.js';
import type { ChatJobData } from '../queue/jobs.js';
import { principal, type AppContext } from '../http/state.js';
import { checkChatRequestFor } from '../upstream/providers/anthropic.js';
import { findModel, jobBase, rateLimit, requireModality, reserve, enqueue } from './admission.js';
import { respondWithResult, respondWithStream } from './relay-response.js';

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
});

export type ChatRequest = z.infer<typeof chatRequestSchema>;

const hasImages = (body: ChatRequest) =>
  body.messages.some((m) => Array.isArray(m.content) && m.content.some((p) => p.type === 'image_url'));

export async function createChatCompletion(ctx: AppContext): Promise<void> {
  const svc = ctx.services;
  const body = await parseBody(ctx, chatRequestSchema, svc.config.bodyLimitBytes);
  const model = await findModel(ctx, body.model);
  requireModality(model, 'chat', '/v1/chat/completions');
  if (!model.vision && hasImages(body)) throw badRequest(`messages: model ${model.id} does not accept image_url parts`);
  if (!model.tools && (body.tools?.length || body.functions?.length)) throw badRequest(`tools: model ${model.id} does not support tools`);
  checkChatRequestFor((await svc.catalog.at(principal(ctx, 'customer').catalogVersion)).channels.get(model.channelId), body);
  await rateLimit(ctx);

  const requestedOutput = body.max_completion_tokens ?? body.max_tokens ?? undefined;
  const { holdNano, maxOutputTokens } = await reserve(ctx, model, {
    promptTokens: estimateChatPromptTokens(body),
    requestedOutput,
    choices: body.n ?? 1,
  });

  const stream = body.stream === true;
  const upstreamBody: Record<string, unknown> = { ...body, model: model.upstreamModel };
  if (requestedOutput === undefined) upstreamBody.max_tokens = maxOutputTokens;
  const job: ChatJobData = {
    ...jobBase(ctx, model, holdNano, svc.config.chatDeadlineMs),
    kind: 'chat',
    stream,
    includeUsage: body.stream_options?.include_usage === true,
    body: upstreamBody,
  };

  const relay = await enqueue(svc, job);
  if (stream) await respondWithStream(ctx, svc, relay, job.deadlineAt, job.includeUsage);
  else await respondWithResult(ctx, svc, relay, job.deadlineAt);
}
