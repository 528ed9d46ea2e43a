import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { Agent, type Dispatcher, request } from 'undici';
import type { z } from 'zod';
import { config } from '../../config.js';
import { abortReasonOf } from '../../queue/abort.js';
import { parseRetryAfter, UpstreamError } from '../errors.js';
import { checkedAnswer } from './shapes.js';

/**
 * Upstream HTTP goes through undici's `request` on one keep-alive pool per process: several times less CPU
 * per call than `fetch`. No undici timeouts: every call carries the job's AbortSignal (deadline, cancel).
 */
const upstreamAgent = new Agent({ keepAliveTimeout: 30_000, headersTimeout: 0, bodyTimeout: 0 });

/**
 * What is read of an upstream's answer, so that no answer can exhaust a worker: an error answer up to what
 * its message needs; a non-stream answer up to UPSTREAM_ANSWER_MAX_BYTES (config.ts); a stream any length,
 * but no single event (or unfinished line) past STREAM_EVENT_MAX_CHARS. Past a cap the call is cut.
 */
const ERROR_BODY_MAX_BYTES = 64 * 1024;
/** Real events are a few KB (a whole tool input or image block at most): 16 Mi characters is far beyond them. */
const STREAM_EVENT_MAX_CHARS = 16 * 1024 * 1024;

export interface UpstreamResponse {
  status: number;
  headers: Dispatcher.ResponseData['headers'];
  body: Dispatcher.ResponseData['body'];
}

export type ErrorReader = (json: unknown) => { message?: string; code?: string };

/** OpenAI's `{"error":{"message","code"}}`, DashScope's `{"code","message"}`, Anthropic's `{"error":{"type","message"}}`. */
export const readCommonError: ErrorReader = (json) => {
  const body = json as { error?: { message?: string; code?: string; type?: string } | string; message?: string; code?: string };
  if (body && typeof body.error === 'object') return { message: body.error.message, code: body.error.code ?? body.error.type };
  if (body && typeof body.error === 'string') return { message: body.error };
  return { message: body?.message, code: body?.code };
};

function abortFailure(signal: AbortSignal): UpstreamError {
  const reason = abortReasonOf(signal);
  if (reason === 'timeout') return new UpstreamError('timeout', 'the upstream did not answer before the deadline');
  if (reason === 'shutdown') return new UpstreamError('interrupted', 'the call was cut by a worker restart');
  return new UpstreamError('cancelled', 'the request was cancelled');
}

/** A transport failure (thrown, not an HTTP status) as an UpstreamError. */
export function transportFailure(err: unknown, signal: AbortSignal): UpstreamError {
  if (err instanceof UpstreamError) return err;
  if (signal.aborted) return abortFailure(signal);
  const code = (err as { code?: string; cause?: { code?: string } }).code ?? (err as { cause?: { code?: string } }).cause?.code;
  return new UpstreamError('connect', `could not reach the upstream (${code ?? (err as Error).message})`);
}

const headerValue = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value);
const utf8 = new TextDecoder();
const mebibytes = (bytes: number) => `${Math.round(bytes / 1024 / 1024)} MiB`;

const tooLarge = (status: number, what: string, maxSize: number) =>
  new UpstreamError('protocol', `${what} was too large (over the ${mebibytes(maxSize)} eastx reads)`, { status });

/** At most `maxBytes` of a body; past them the rest is left unread and the connection closed (`whole` false). */
async function readUpTo(body: UpstreamResponse['body'], maxBytes: number): Promise<{ bytes: Buffer; whole: boolean }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    if (size + chunk.length > maxBytes) {
      chunks.push(chunk.subarray(0, maxBytes - size));
      body.destroy();
      return { bytes: Buffer.concat(chunks), whole: false };
    }
    chunks.push(chunk);
    size += chunk.length;
  }
  return { bytes: Buffer.concat(chunks, size), whole: true };
}

/** Sends a request; any non-2xx answer becomes an UpstreamError with the provider's message and Retry-After. */
export async function send(
  url: string,
  init: { method?: string; headers: Record<string, string>; body?: unknown },
  signal: AbortSignal,
  readError: ErrorReader = readCommonError,
): Promise<UpstreamResponse> {
  let response: Dispatcher.ResponseData;
  try {
    response = await request(url, {
      method: (init.method ?? 'POST') as Dispatcher.HttpMethod,
      headers: init.body === undefined ? init.headers : { 'content-type': 'application/json', ...init.headers },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
      signal,
      dispatcher: upstreamAgent,
    });
  } catch (err) {
    throw transportFailure(err, signal);
  }
  if (response.statusCode >= 200 && response.statusCode < 300)
    return { status: response.statusCode, headers: response.headers, body: response.body };
  const text = await readUpTo(response.body, ERROR_BODY_MAX_BYTES).then(
    ({ bytes }) => utf8.decode(bytes),
    () => '',
  );
  let parsed: { message?: string; code?: string } = {};
  try {
    parsed = readError(JSON.parse(text));
  } catch {
    parsed = { message: text.slice(0, 300) };
  }
  throw new UpstreamError('http', parsed.message || `upstream answered HTTP ${response.statusCode}`, {
    status: response.statusCode,
    providerCode: parsed.code,
    retryAfterMs: parseRetryAfter(headerValue(response.headers['retry-after'])),
  });
}

/**
 * A non-stream answer: read up to UPSTREAM_ANSWER_MAX_BYTES (a larger Content-Length is refused unread), parsed,
 * and checked against `shape` (./shapes.ts): any failure is a 502 with the upstream's status, never a crash.
 */
export async function readJson<S extends z.ZodType>(response: UpstreamResponse, signal: AbortSignal, shape: S): Promise<z.output<S>> {
  const maxBytes = config().upstreamAnswerMaxBytes;
  if (Number(headerValue(response.headers['content-length']) ?? 0) > maxBytes) {
    response.body.destroy();
    throw tooLarge(response.status, 'the upstream answer', maxBytes);
  }
  let json: unknown;
  try {
    const { bytes, whole } = await readUpTo(response.body, maxBytes);
    if (!whole) throw tooLarge(response.status, 'the upstream answer', maxBytes);
    json = JSON.parse(utf8.decode(bytes));
  } catch (err) {
    if (err instanceof UpstreamError) throw err;
    if (signal.aborted) throw transportFailure(err, signal);
    throw new UpstreamError('protocol', 'the upstream answered with malformed JSON', { status: response.status });
  }
  return checkedAnswer(shape, json, response.status);
}

/** The server-sent events of a streamed response, parsed by eventsource-parser; an event past its cap ends the stream. */
export async function* sseEvents(response: UpstreamResponse, signal: AbortSignal): AsyncGenerator<EventSourceMessage> {
  const parsed: EventSourceMessage[] = [];
  let overflow = false;
  const parser = createParser({
    onEvent: (event) => parsed.push(event),
    onError: (error) => {
      if (error.type === 'max-buffer-size-exceeded') overflow = true;
    },
    maxBufferSize: STREAM_EVENT_MAX_CHARS,
  });
  const decoder = new TextDecoder();
  try {
    for await (const chunk of response.body) {
      parser.feed(decoder.decode(chunk as Buffer, { stream: true }));
      while (parsed.length > 0) yield parsed.shift()!;
      if (overflow) break; // leaving the loop closes the connection
    }
  } catch (err) {
    if (signal.aborted) throw transportFailure(err, signal);
    throw new UpstreamError('protocol', 'the upstream stream broke off', { status: response.status });
  }
  if (overflow) throw tooLarge(response.status, 'an upstream stream event', STREAM_EVENT_MAX_CHARS);
}

/** One stream event's JSON, checked against `shape` (./shapes.ts). */
export function parseEventJson<S extends z.ZodType>(data: string, shape: S, status: number): z.output<S> {
  let json: unknown;
  try {
    json = JSON.parse(data);
  } catch {
    throw new UpstreamError('protocol', 'the upstream sent a malformed stream event', { status });
  }
  return checkedAnswer(shape, json, status);
}
