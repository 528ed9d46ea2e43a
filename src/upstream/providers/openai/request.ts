import type { Json } from '../types.js';

/** OpenAI-compatible chat: the client's body as it came (unknown fields included), with the stream flags set. */
export function chatRequest(body: Json, stream: boolean): Json {
  if (!stream) return { ...body, stream: false };
  // usage is always needed for billing; the web side shows the usage chunk only to clients that asked for it
  return { ...body, stream: true, stream_options: { ...(body.stream_options as Json | undefined), include_usage: true } };
}
