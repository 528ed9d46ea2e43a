import { UpstreamError } from '../../errors.js';
import { parseEventJson, sseEvents, type UpstreamResponse } from '../http.js';
import type { ChatChunk } from '../types.js';

/** An OpenAI-compatible SSE stream as chunks; an in-stream error event or a missing [DONE] is a failure. */
export async function* chatChunks(response: UpstreamResponse, signal: AbortSignal): AsyncGenerator<ChatChunk> {
  for await (const event of sseEvents(response, signal)) {
    if (event.data === '[DONE]') return;
    const chunk = parseEventJson<ChatChunk & { error?: { message?: string } }>(event.data);
    if (chunk.error) throw new UpstreamError('http', chunk.error.message ?? 'the upstream stream reported an error', { status: 200 });
    yield chunk;
  }
  throw new UpstreamError('protocol', 'the upstream stream ended without [DONE]', { status: 200 });
}
