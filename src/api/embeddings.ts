import { z } from 'zod';
import { estimateEmbeddingTokens } from '../billing/estimate.js';
import type { ChannelType } from '../db/schema.js';
import { parseBody } from '../http/body.js';
import { badRequest } from '../http/errors.js';
import type { EmbeddingsJobData } from '../queue/jobs.js';
import { principal, type AppContext } from '../http/state.js';
import { findModel, jobBase, rateLimit, requireModality, reserve, enqueue } from './admission.js';
import { respondWithResult } from './relay-response.js';

/** OpenAI's limit on the items of one embeddings request (and on the length of a token array). */
export const MAX_EMBEDDING_INPUTS = 2048;

/** Channel types whose embeddings endpoint accepts token arrays as `input` (DashScope's takes text only). */
const TOKEN_INPUT_CHANNELS: ReadonlySet<ChannelType> = new Set(['openai']);

/** OpenAI's embeddings request; unknown fields pass through to the upstream untouched. */
const embeddingsRequestSchema = z.looseObject({
  model: z.string().min(1),
  input: z.unknown().optional(),
  encoding_format: z.enum(['float', 'base64']).nullish(),
  dimensions: z.number().int().positive().nullish(),
  user: z.string().nullish(),
});

const isTokenArray = (value: unknown): value is number[] =>
  Array.isArray(value) && value.every((t) => Number.isInteger(t) && (t as number) >= 0);

/** Checks `input` (SPEC §1): a string, strings, a token array or token arrays; says whether it holds tokens. */
function checkInput(input: unknown): { tokens: boolean } {
  const shape = 'input: must be a string, an array of strings, an array of integers (tokens) or an array of token arrays';
  if (input === undefined || input === null) throw badRequest('input: required');
  if (typeof input === 'string') {
    if (input === '') throw badRequest('input: must not be an empty string');
    return { tokens: false };
  }
  if (!Array.isArray(input)) throw badRequest(shape);
  if (input.length === 0) throw badRequest('input: must not be an empty array');
  if (input.length > MAX_EMBEDDING_INPUTS) throw badRequest(`input: at most ${MAX_EMBEDDING_INPUTS} items per request (got ${input.length})`);
  if (isTokenArray(input)) return { tokens: true };
  input.forEach((item, i) => {
    if (typeof item === 'string') {
      if (item === '') throw badRequest(`input[${i}]: must not be an empty string`);
    } else if (isTokenArray(item)) {
      if (item.length === 0) throw badRequest(`input[${i}]: must not be an empty token array`);
      if (item.length > MAX_EMBEDDING_INPUTS) throw badRequest(`input[${i}]: at most ${MAX_EMBEDDING_INPUTS} tokens per token array`);
    } else {
      throw badRequest(shape);
    }
  });
  const kinds = new Set(input.map((item) => typeof item));
  if (kinds.size > 1) throw badRequest('input: must not mix strings and token arrays');
  return { tokens: !kinds.has('string') };
}

export async function createEmbeddings(ctx: AppContext): Promise<void> {
  const svc = ctx.services;
  const body = await parseBody(ctx, embeddingsRequestSchema, svc.config.bodyLimitBytes);
  const { tokens } = checkInput(body.input);
  const model = await findModel(ctx, body.model);
  requireModality(model, 'embedding', '/v1/embeddings');
  const channel = (await svc.catalog.at(principal(ctx, 'customer').catalogVersion)).channels.get(model.channelId);
  if (tokens && !(channel && TOKEN_INPUT_CHANNELS.has(channel.type))) {
    throw badRequest(`input: model ${model.id} takes text only; send strings, not token arrays`);
  }
  await rateLimit(ctx);

  const { holdNano } = await reserve(ctx, model, { promptTokens: estimateEmbeddingTokens(body.input), requestedOutput: 0 });

  // The upstream is always asked for floats (not every provider encodes base64); the worker encodes for the client.
  const { encoding_format: encodingFormat, dimensions, user, ...rest } = body;
  const upstreamBody: Record<string, unknown> = { ...rest, model: model.upstreamModel, encoding_format: 'float' };
  if (dimensions != null) upstreamBody.dimensions = dimensions;
  if (user != null) upstreamBody.user = user;
  const job: EmbeddingsJobData = {
    ...jobBase(ctx, model, holdNano, svc.config.chatDeadlineMs),
    kind: 'embeddings',
    encodingFormat: encodingFormat ?? 'float',
    body: upstreamBody,
  };

  const relay = await enqueue(svc, job);
  await respondWithResult(ctx, svc, relay, job.deadlineAt);
}
