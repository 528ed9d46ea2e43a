import { z } from 'zod';
import { estimateEmbeddingTokens } from '../billing/estimate.js';
import { badRequest } from '../http/errors.js';
import type { AppContext } from '../http/state.js';
import type { EmbeddingsJobData } from '../queue/jobs.js';
import { admitted, enqueue, type FrontDoor, jobBase } from './admission.js';
import { respondWithResult } from './relay-response.js';

/** OpenAI's limit on the items of one embeddings request (and on the length of a token array). */
export const MAX_EMBEDDING_INPUTS = 2048;

/** OpenAI's embeddings request; unknown fields pass through to the upstream untouched. */
export const embeddingsRequestSchema = z.looseObject({
  model: z.string().min(1),
  input: z.unknown().optional(),
  encoding_format: z.enum(['float', 'base64']).nullish(),
  dimensions: z.number().int().positive().nullish(),
  user: z.string().nullish(),
});

type EmbeddingsRequest = z.infer<typeof embeddingsRequestSchema>;

const isTokenArray = (value: unknown): value is number[] =>
  Array.isArray(value) && value.every((t) => Number.isInteger(t) && (t as number) >= 0);

/** Checks `input` (SPEC §1): a string, strings, a token array or token arrays. */
function checkInput(input: unknown): void {
  const shape = 'input: must be a string, an array of strings, an array of integers (tokens) or an array of token arrays';
  if (input === undefined || input === null) throw badRequest('input: required');
  if (typeof input === 'string') {
    if (input === '') throw badRequest('input: must not be an empty string');
    return;
  }
  if (!Array.isArray(input)) throw badRequest(shape);
  if (input.length === 0) throw badRequest('input: must not be an empty array');
  if (input.length > MAX_EMBEDDING_INPUTS)
    throw badRequest(`input: at most ${MAX_EMBEDDING_INPUTS} items per request (got ${input.length})`);
  if (isTokenArray(input)) return;
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
}

const tokenInput = (input: unknown) => Array.isArray(input) && input.length > 0 && typeof input[0] !== 'string';

export const embeddingsDoor: FrontDoor<EmbeddingsRequest> = {
  endpoint: '/v1/embeddings',
  modality: 'embedding',
  schema: embeddingsRequestSchema,
  checkBody: (body) => checkInput(body.input),
  demand: (body) => ({ kind: 'embeddings', tokenInput: tokenInput(body.input) }),
  worstCase: (body) => ({ promptTokens: estimateEmbeddingTokens(body.input), requestedOutput: 0 }),
};

/** POST /v1/embeddings, after admission. */
export async function createEmbeddings(ctx: AppContext): Promise<void> {
  const { body, model } = admitted<EmbeddingsRequest>(ctx);
  // The upstream is always asked for floats (not every provider encodes base64); the worker encodes for the client.
  const { encoding_format: encodingFormat, dimensions, user, ...rest } = body;
  const upstreamBody: Record<string, unknown> = { ...rest, model: model.upstreamModel, encoding_format: 'float' };
  if (dimensions != null) upstreamBody.dimensions = dimensions;
  if (user != null) upstreamBody.user = user;
  const job: EmbeddingsJobData = {
    ...jobBase(ctx, 'embeddings'),
    kind: 'embeddings',
    encodingFormat: encodingFormat ?? 'float',
    body: upstreamBody,
  };

  const relay = await enqueue(ctx, job);
  await respondWithResult(ctx, relay, job);
}
