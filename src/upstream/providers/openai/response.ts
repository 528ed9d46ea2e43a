import { readJson, type UpstreamResponse } from '../http.js';
import type { ChatCompletion, EmbeddingsResult } from '../types.js';

/** OpenAI-compatible answers are already in the client's format. */
export const readCompletion = (response: UpstreamResponse, signal: AbortSignal) => readJson<ChatCompletion>(response, signal);

export const readEmbeddings = async (response: UpstreamResponse, signal: AbortSignal): Promise<EmbeddingsResult> => ({
  response: await readJson<EmbeddingsResult['response']>(response, signal),
});
