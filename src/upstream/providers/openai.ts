import { UpstreamError } from '../errors.js';
import { parseEventJson, readJson, send, sseEvents } from './http.js';
import type { ChatChunk, ChatCompletion, EmbeddingsResult, ProviderAdapter, UpstreamCall } from './types.js';

/**
 * Any OpenAI-compatible endpoint. `apiRoot(baseUrl)` is where `/chat/completions` and `/embeddings` live:
 * the channel's base_url itself for `openai` channels (it includes /v1); DashScope reuses this adapter
 * with its compatible-mode root.
 */
export function openaiCompatible(apiRoot: (baseUrl: string) => string): ProviderAdapter {
  const headers = (call: UpstreamCall) => ({ authorization: `Bearer ${call.secret}` });

  return {
    async chat(body, call) {
      const response = await send(`${apiRoot(call.baseUrl)}/chat/completions`, { headers: headers(call), body: { ...body, stream: false } }, call.signal);
      return readJson<ChatCompletion>(response, call.signal);
    },

    async *chatStream(body, call) {
      const streamOptions = { ...(body.stream_options as object | undefined), include_usage: true };
      const response = await send(
        `${apiRoot(call.baseUrl)}/chat/completions`,
        { headers: headers(call), body: { ...body, stream: true, stream_options: streamOptions } },
        call.signal,
      );
      let finished = false;
      for await (const event of sseEvents(response, call.signal)) {
        if (event.data === '[DONE]') {
          finished = true;
          break;
        }
        const chunk = parseEventJson<ChatChunk & { error?: { message?: string } }>(event.data);
        if (chunk.error) throw new UpstreamError('http', chunk.error.message ?? 'the upstream stream reported an error', { status: 200 });
        yield chunk;
      }
      if (!finished) throw new UpstreamError('protocol', 'the upstream stream ended without [DONE]', { status: 200 });
    },

    async embeddings(body, call): Promise<EmbeddingsResult> {
      const response = await send(`${apiRoot(call.baseUrl)}/embeddings`, { headers: headers(call), body }, call.signal);
      return { response: await readJson<EmbeddingsResult['response']>(response, call.signal) };
    },
  };
}

export const openaiAdapter = openaiCompatible((baseUrl) => baseUrl);
