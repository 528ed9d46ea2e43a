/**
 * Anthropic Messages API (`{base_url}/v1/messages`) behind the OpenAI-shaped adapter surface: requests,
 * answers and streams are translated both ways (anthropic/request, response, stream), and requests an
 * Anthropic model cannot honour are refused on the web side before admission (anthropic/validate).
 */
import type { Channel } from '../../catalog/catalog.js';
import { UpstreamError } from '../errors.js';
import { toAnthropicRequest } from './anthropic/request.js';
import { styleOf, toChatCompletion, type AnthropicMessage } from './anthropic/response.js';
import { StreamTranslator, type AnthropicEvent } from './anthropic/stream.js';
import { checkAnthropicChatRequest } from './anthropic/validate.js';
import { parseEventJson, readJson, send, sseEvents } from './http.js';
import type { ProviderAdapter, UpstreamCall } from './types.js';

export { toAnthropicRequest } from './anthropic/request.js';
export { toChatCompletion } from './anthropic/response.js';
export { StreamTranslator } from './anthropic/stream.js';
export { anthropicRequestProblem } from './anthropic/validate.js';

const API_VERSION = '2023-06-01';

/** SPEC §4 puts `/v1/messages` under base_url; a base_url that already ends in /v1 is forgiven. */
const messagesUrl = (call: UpstreamCall) => `${call.baseUrl.replace(/\/+$/, '').replace(/\/v1$/, '')}/v1/messages`;
const headers = (call: UpstreamCall) => ({ 'x-api-key': call.secret, 'anthropic-version': API_VERSION });

export const anthropicAdapter: ProviderAdapter = {
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
};

/** Web-side check before admission: a 400 naming the field for what an Anthropic channel cannot honour. */
export function checkChatRequestFor(channel: Channel | undefined, body: Record<string, unknown>): void {
  if (channel?.type === 'anthropic') checkAnthropicChatRequest(body);
}
