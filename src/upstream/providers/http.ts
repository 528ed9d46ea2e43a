import { EventSourceParserStream, type EventSourceMessage } from 'eventsource-parser/stream';
import { parseRetryAfter, UpstreamError } from '../errors.js';

export type ErrorReader = (json: unknown) => { message?: string; code?: string };

/** OpenAI's `{"error":{"message","code"}}`, DashScope's `{"code","message"}`, Anthropic's `{"error":{"type","message"}}`. */
export const readCommonError: ErrorReader = (json) => {
  const body = json as { error?: { message?: string; code?: string; type?: string } | string; message?: string; code?: string };
  if (body && typeof body.error === 'object') return { message: body.error.message, code: body.error.code ?? body.error.type };
  if (body && typeof body.error === 'string') return { message: body.error };
  return { message: body?.message, code: body?.code };
};

function abortFailure(signal: AbortSignal): UpstreamError {
  const reason = signal.reason as { failure?: string } | undefined;
  return reason?.failure === 'timeout'
    ? new UpstreamError('timeout', 'the upstream did not answer before the deadline')
    : new UpstreamError('cancelled', 'the request was cancelled');
}

/** A fetch failure (thrown, not an HTTP status) as an UpstreamError. */
export function transportFailure(err: unknown, signal: AbortSignal): UpstreamError {
  if (err instanceof UpstreamError) return err;
  if (signal.aborted) return abortFailure(signal);
  const cause = (err as { cause?: { code?: string } }).cause;
  return new UpstreamError('connect', `could not reach the upstream (${cause?.code ?? (err as Error).message})`);
}

/** Sends a request; any non-2xx answer becomes an UpstreamError with the provider's message and Retry-After. */
export async function send(
  url: string,
  init: { method?: string; headers: Record<string, string>; body?: unknown },
  signal: AbortSignal,
  readError: ErrorReader = readCommonError,
): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(url, {
      method: init.method ?? 'POST',
      headers: init.body === undefined ? init.headers : { 'content-type': 'application/json', ...init.headers },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
      signal,
    });
  } catch (err) {
    throw transportFailure(err, signal);
  }
  if (response.ok) return response;
  const text = await response.text().catch(() => '');
  let parsed: { message?: string; code?: string } = {};
  try {
    parsed = readError(JSON.parse(text));
  } catch {
    parsed = { message: text.slice(0, 300) };
  }
  throw new UpstreamError('http', parsed.message || `upstream answered HTTP ${response.status}`, {
    status: response.status,
    providerCode: parsed.code,
    retryAfterMs: parseRetryAfter(response.headers.get('retry-after')),
  });
}

export async function readJson<T>(response: Response, signal: AbortSignal): Promise<T> {
  try {
    return (await response.json()) as T;
  } catch (err) {
    if (signal.aborted) throw transportFailure(err, signal);
    throw new UpstreamError('protocol', 'the upstream answered with malformed JSON', { status: response.status });
  }
}

/** The server-sent events of a streamed response, parsed by eventsource-parser. */
export async function* sseEvents(response: Response, signal: AbortSignal): AsyncGenerator<EventSourceMessage> {
  if (!response.body) throw new UpstreamError('protocol', 'the upstream sent no stream body');
  const events = response.body.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream());
  try {
    for await (const event of events) yield event;
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
