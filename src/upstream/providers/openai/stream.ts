import { z } from 'zod';
import { UpstreamError } from '../../errors.js';
import { parseEventJson, sseEvents, type UpstreamResponse } from '../http.js';
import { chatChoices, chatUsage, reportedUsage } from '../shapes.js';
import type { ChatChunk } from '../types.js';

/** What the gateway relies on in a chunk: choices (objects) when present, and its usage. */
const chatChunk = z.looseObject({ choices: chatChoices.optional(), usage: reportedUsage(chatUsage) });

const errorMessageOf = (error: unknown) => {
  const message = (error as { message?: unknown }).message;
  return typeof message === 'string' ? message : 'the upstream stream reported an error';
};

/** An OpenAI-compatible SSE stream as chunks; an in-stream error event or a missing [DONE] is a failure. */
export async function* chatChunks(response: UpstreamResponse, signal: AbortSignal): AsyncGenerator<ChatChunk> {
  for await (const event of sseEvents(response, signal)) {
    if (event.data === '[DONE]') return;
    const chunk = parseEventJson(event.data, chatChunk, 200);
    if (chunk.error) throw new UpstreamError('http', errorMessageOf(chunk.error), { status: 200 });
    yield chunk;
  }
  throw new UpstreamError('protocol', 'the upstream stream ended without [DONE]', { status: 200 });
}
