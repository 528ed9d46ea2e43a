import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { Agent, type Dispatcher, request } from 'undici';
import { abortReasonOf } from '../../queue/abort.js';
import { parseRetryAfter, UpstreamError } from '../errors.js';

/**
 * Upstream HTTP goes through undici's `request` on one keep-alive pool per process: several times less CPU
 * per call than `fetch`. No undici timeouts: every call carries the job's AbortSignal (deadline, cancel).
 */
const upstreamAgent = new Agent({ keepAliveTimeout: 30_000, headersTimeout: 0, bodyTimeout: 0 });

export interface UpstreamResponse {
  status: number;
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
  if (response.statusCode >= 200 && response.statusCode < 300) return { status: response.statusCode, body: response.body };
  const text = await response.body.text().catch(() => '');
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

export async function readJson<T>(response: UpstreamResponse, signal: AbortSignal): Promise<T> {
  try {
    return (await response.body.json()) as T;
  } catch (err) {
    if (signal.aborted) throw transportFailure(err, signal);
    throw new UpstreamError('protocol', 'the upstream answered with malformed JSON', { status: response.status });
  }
}

/** The server-sent events of a streamed response, parsed by eventsource-parser. */
export async function* sseEvents(response: UpstreamResponse, signal: AbortSignal): AsyncGenerator<EventSourceMessage> {
  const parsed: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (event) => parsed.push(event) });
  const decoder = new TextDecoder();
  try {
    for await (const chunk of response.body) {
      parser.feed(decoder.decode(chunk as Buffer, { stream: true }));
      while (parsed.length > 0) yield parsed.shift()!;
    }
  } catch (err) {
    if (signal.aborted) throw transportFailure(err, signal);
    throw new UpstreamError('protocol', 'the upstream stream broke off', { status: response.status });
  }
}

export function parseEventJson<T>(data: string): T {
  try {
    return JSON.parse(data) as T;
  } catch {
    throw new UpstreamError('protocol', 'the upstream sent a malformed stream event');
  }
}
