import { send } from '../http.js';
import type { Provider, ProviderAdapter, UpstreamCall } from '../types.js';
import { chatRequest } from './request.js';
import { readCompletion, readEmbeddings } from './response.js';
import { chatChunks } from './stream.js';

/**
 * Any OpenAI-compatible endpoint. `apiRoot(baseUrl)` is where `/chat/completions` and `/embeddings` live:
 * the channel's base_url itself for `openai` channels (it includes /v1); DashScope's compatible mode reuses
 * this adapter with its own root.
 */
export function openaiCompatible(
  apiRoot: (baseUrl: string) => string,
): Required<Pick<ProviderAdapter, 'chat' | 'chatStream' | 'embeddings'>> {
  const headers = (call: UpstreamCall) => ({ authorization: `Bearer ${call.secret}` });
  const post = (call: UpstreamCall, path: string, body: unknown) =>
    send(`${apiRoot(call.baseUrl)}${path}`, { headers: headers(call), body }, call.signal);
  return {
    async chat(body, call) {
      return readCompletion(await post(call, '/chat/completions', chatRequest(body, false)), call.signal);
    },
    async *chatStream(body, call) {
      yield* chatChunks(await post(call, '/chat/completions', chatRequest(body, true)), call.signal);
    },
    async embeddings(body, call) {
      return readEmbeddings(await post(call, '/embeddings', body), call.signal);
    },
  };
}

export const openaiProvider: Provider = {
  capabilities: {
    chat: true,
    stream: true,
    tools: true,
    vision: true,
    embeddings: true,
    embeddingTokenInput: true,
    images: false,
    messages: false,
    reasoning: 'reasoning_effort',
    responseFormats: 'forwarded',
  },
  adapter: openaiCompatible((baseUrl) => baseUrl),
};
