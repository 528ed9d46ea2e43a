import { z } from 'zod';
import { readJson, type UpstreamResponse } from '../http.js';
import { chatChoices, chatUsage, jsonObject, reportedUsage, tokenCount } from '../shapes.js';
import type { ChatCompletion, EmbeddingsResult } from '../types.js';

/** What the gateway relies on in a chat answer: its choices (objects, tool calls objects) and its usage. */
const chatCompletion = z.looseObject({ choices: chatChoices, usage: reportedUsage(chatUsage) });

/** Embedding vectors themselves are checked as they are converted (workers/embeddings.ts). */
const embeddings = z.looseObject({
  data: z.array(jsonObject),
  usage: reportedUsage(z.looseObject({ prompt_tokens: tokenCount, total_tokens: tokenCount.optional() })),
});

/** OpenAI-compatible answers are already in the client's format. */
export const readCompletion = (response: UpstreamResponse, signal: AbortSignal): Promise<ChatCompletion> =>
  readJson(response, signal, chatCompletion);

export const readEmbeddings = async (response: UpstreamResponse, signal: AbortSignal): Promise<EmbeddingsResult> => ({
  response: (await readJson(response, signal, embeddings)) as EmbeddingsResult['response'],
});
