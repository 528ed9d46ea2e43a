/**
 * Anthropic Messages API (`{base_url}/v1/messages`) behind the OpenAI-shaped adapter surface: requests,
 * answers and streams are translated both ways (./request, ./response, ./stream); ./check refuses, on the
 * web side before anything is held, what an Anthropic model cannot honour. The `messages*` methods serve
 * clients that speak the Messages API themselves (SPEC §1b): bodies and events pass through untranslated.
 */

import type { AnthropicHeaders } from '../../../queue/jobs.js';
import { UpstreamError } from '../../errors.js';
import { parseEventJson, readJson, send, sseEvents } from '../http.js';
import type { Json, Provider, UpstreamCall } from '../types.js';
import { anthropicRequestProblem } from './check.js';
import { toAnthropicRequest } from './request.js';
import { type AnthropicMessage, styleOf, toChatCompletion } from './response.js';
import { anthropicEvent, anthropicMessage, countedTokens } from './shapes.js';
import { type AnthropicEvent, StreamTranslator, streamErrorOf } from './stream.js';

const API_VERSION = '2023-06-01';

/** SPEC §4 puts `/v1/messages` under base_url; a base_url that already ends in /v1 is forgiven. */
const messagesUrl = (call: UpstreamCall, path = '') => `${call.baseUrl.replace(/\/+$/, '').replace(/\/v1$/, '')}/v1/messages${path}`;
/** The client's `anthropic-version` (else ours) and `anthropic-beta`, with the token's key. */
const headers = (call: UpstreamCall, client: AnthropicHeaders = {}) => ({
  'x-api-key': call.secret,
  'anthropic-version': client.version ?? API_VERSION,
  ...(client.beta !== undefined ? { 'anthropic-beta': client.beta } : {}),
});
/**
 * A thinking budget below max_tokens, as Anthropic wants it: the gateway lowers a max_tokens above the model's
 * max_output_tokens (src/api/messages.ts), and Claude Code asks a budget one below its own max_tokens.
 */
function thinkingWithin(body: Json): Json {
  const { thinking, max_tokens: maxTokens } = body as { thinking?: Json; max_tokens?: unknown };
  const budget = thinking?.budget_tokens;
  if (typeof budget !== 'number' || typeof maxTokens !== 'number' || budget < maxTokens) return {};
  return { thinking: { ...thinking, budget_tokens: Math.max(1, maxTokens - 1) } };
}

/** A Messages body as the client sent it, for the route's upstream model. */
const passThrough = (body: Json, call: UpstreamCall, stream?: boolean) => ({
  ...body,
  ...thinkingWithin(body),
  model: call.upstreamModel,
  ...(stream !== undefined ? { stream } : {}),
});

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
    messages: true,
    reasoning: 'thinking',
  },
  chatRequestProblem: anthropicRequestProblem,
  adapter: {
    async chat(body, call) {
      const request = toAnthropicRequest(body, call.upstreamModel, false);
      const response = await send(messagesUrl(call), { headers: headers(call), body: request }, call.signal);
      return toChatCompletion((await readJson(response, call.signal, anthropicMessage)) as AnthropicMessage, styleOf(body));
    },

    async *chatStream(body, call) {
      const request = toAnthropicRequest(body, call.upstreamModel, true);
      const response = await send(messagesUrl(call), { headers: headers(call), body: request }, call.signal);
      const translator = new StreamTranslator(styleOf(body));
      for await (const event of sseEvents(response, call.signal)) {
        yield* translator.push(parseEventJson(event.data, anthropicEvent, 200) as AnthropicEvent);
        if (translator.finished) return;
      }
      throw new UpstreamError('protocol', 'the upstream stream ended before message_stop', { status: 200 });
    },

    async messages(body, call, client) {
      const response = await send(messagesUrl(call), { headers: headers(call, client), body: passThrough(body, call, false) }, call.signal);
      return readJson(response, call.signal, anthropicMessage);
    },

    async *messagesStream(body, call, client) {
      const response = await send(messagesUrl(call), { headers: headers(call, client), body: passThrough(body, call, true) }, call.signal);
      for await (const event of sseEvents(response, call.signal)) {
        const data = parseEventJson(event.data, anthropicEvent, 200);
        if (data.type === 'error') throw streamErrorOf(data as AnthropicEvent);
        yield { event: event.event ?? data.type, data };
        if (data.type === 'message_stop') return;
      }
      throw new UpstreamError('protocol', 'the upstream stream ended before message_stop', { status: 200 });
    },

    async countMessageTokens(body, call, client) {
      const response = await send(
        messagesUrl(call, '/count_tokens'),
        { headers: headers(call, client), body: passThrough(body, call) },
        call.signal,
      );
      return (await readJson(response, call.signal, countedTokens)).input_tokens;
    },
  },
};
