import type { Json } from '../types.js';

/**
 * OpenAI's reasoning models (o1, o3, o4-mini, gpt-5…, also behind a router's `vendor/` prefix) refuse
 * `max_tokens` and want `max_completion_tokens`, which OpenAI has preferred for every model since.
 */
const REASONING_MODEL = /^(?:[\w.-]+\/)?(?:o\d|gpt-5)/i;

/**
 * The output limit under the name the upstream takes: OpenAI's reasoning models get `max_tokens` as
 * `max_completion_tokens`. Every other model keeps `max_tokens`, which all OpenAI-compatible servers honour
 * (a server that ignored `max_completion_tokens` would answer past the hold); `reasoning_effort` alone does
 * not tell OpenAI's models from others that reason.
 */
function withOutputLimitName(body: Json): Json {
  if (body.max_tokens == null || typeof body.model !== 'string' || !REASONING_MODEL.test(body.model)) return body;
  const { max_tokens, ...rest } = body;
  return { ...rest, max_completion_tokens: rest.max_completion_tokens ?? max_tokens };
}

/** OpenAI-compatible chat: the client's body as it came (unknown fields included), with the stream flags set. */
export function chatRequest(body: Json, stream: boolean): Json {
  const limited = withOutputLimitName(body);
  if (!stream) return { ...limited, stream: false };
  // usage is always needed for billing; the web side shows the usage chunk only to clients that asked for it
  return { ...limited, stream: true, stream_options: { ...(limited.stream_options as Json | undefined), include_usage: true } };
}
