/**
 * Anthropic Messages API (`{base_url}/v1/messages`) behind the OpenAI-shaped adapter surface: requests,
 * answers and streams are translated both ways (./request, ./response, ./stream); ./check refuses, on the
 * web side before anything is held, what an Anthropic model cannot honour.
 */
import { UpstreamError } from '../../errors.js';
import { parseEventJson, readJson, send, sseEvents } from '../http.js';
import type { Provider, UpstreamCall } from '../types.js';
import { anthropicRequestProblem } from './check.js';
import { toAnthropicRequest } from './request.js';
import { type AnthropicMessage, styleOf, toChatCompletion } from './response.js';
import { type AnthropicEvent, StreamTranslator } from './stream.js';

const API_VERSION = '2023-06-01';

/** SPEC §4 puts `/v1/messages` under base_url; a base_url that already ends in /v1 is forgiven. */
const messagesUrl = (call: UpstreamCall) => `${call.baseUrl.replace(/\/+$/, '').replace(/\/v1$/, '')}/v1/messages`;
const headers = (call: UpstreamCall) => ({ 'x-api-key': call.secret, 'anthropic-version': API_VERSION });

export const anthropicProvider: Provider = {
  capabilities: {
    chat: true,
    stream: true,
    tools: true,
    vision: true,
    embeddings: false,
    embeddingTokenInput: false,
    images: false,
    responseFormats: ['text', 'json_object', 'json_schema'],
  },
  chatRequestProblem: anthropicRequestProblem,
  adapter: {
    async chat(body, call) {
      const request = toAnthropicRequest(body, call.upstreamModel, false);
      const response = await send(messagesUrl(call), { headers: headers(call), body: request }, call.signal);
      return toChatCompletion(await readJson<AnthropicMessage>(response, call.signal), styleOf(body));
    },

    async *chatStream(body, call) {
      const request = toAnthropicRequest(body, call.upstreamModel, true);
      const response = await send(messagesUrl(call), { headers: headers(call), body: request }, call.signal);
      const translator = new StreamTranslator(styleOf(body));
      for await (const event of sseEvents(response, call.signal)) {
        yield* translator.push(parseEventJson<AnthropicEvent>(event.data));
        if (translator.finished) return;
      }
      throw new UpstreamError('protocol', 'the upstream stream ended before message_stop', { status: 200 });
    },
  },
};
