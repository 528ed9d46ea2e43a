/** Small node:http helpers shared by the mock upstream's provider handlers. */

import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Behavior } from './behavior.js';
import type { Slot } from './stats.js';

/** Everything a handler needs to answer one request. */
export interface Ctx {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly secret: string;
  readonly behavior: Behavior;
  /** aborted as soon as the response is over (finished, client gone, or server closing) */
  readonly signal: AbortSignal;
  /** base URL as the caller sees this server, without trailing slash */
  readonly publicUrl: string;
  /** destroy the connection on purpose (ECONNRESET for the client); not counted as closedEarly */
  resetConnection(): void;
  /** keep this request's in-flight slot open after the response ends; returns its release */
  detachSlot(): () => void;
}

export function createCtx(args: {
  req: IncomingMessage;
  res: ServerResponse;
  secret: string;
  behavior: Behavior;
  publicUrl: string;
  slot: Slot | undefined;
}): Ctx {
  const { req, res, slot } = args;
  const abort = new AbortController();
  let serverReset = false;
  let detached = false;
  res.once('close', () => {
    abort.abort();
    if (!detached) slot?.end(!res.writableFinished && !serverReset);
  });
  return {
    req,
    res,
    secret: args.secret,
    behavior: args.behavior,
    signal: abort.signal,
    publicUrl: args.publicUrl,
    resetConnection() {
      serverReset = true;
      req.socket.resetAndDestroy();
    },
    detachSlot() {
      detached = true;
      return () => slot?.end(false);
    },
  };
}

/** Resolves after `ms`, or earlier when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

export function sendJson(ctx: Ctx, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (ctx.signal.aborted || ctx.res.headersSent) return;
  const text = JSON.stringify(body);
  ctx.res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  ctx.res.end(text);
}

export interface ParsedBody {
  json: unknown;
  /** a body was sent but is not valid JSON */
  invalid: boolean;
}

export async function readBody(req: IncomingMessage): Promise<ParsedBody> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const raw = Buffer.concat(chunks).toString('utf8');
  if (raw.trim() === '') return { json: undefined, invalid: false };
  try {
    return { json: JSON.parse(raw) as unknown, invalid: false };
  } catch {
    return { json: undefined, invalid: true };
  }
}

export function flattenHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) out[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

export function bearerToken(req: IncomingMessage): string {
  const match = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
  return match?.[1]?.trim() ?? '';
}

export function headerValue(req: IncomingMessage, name: string): string {
  const value = req.headers[name.toLowerCase()];
  return (Array.isArray(value) ? value[0] : value) ?? '';
}

// ---------------------------------------------------------------- SSE playback

/** One serialized SSE frame. `content` frames count for midStreamResetAfter / midStreamError. */
export interface SseFrame {
  text: string;
  content: boolean;
}

export interface PlayOptions {
  chunkDelayMs: number;
  /** destroy the connection before content frame number N+1 */
  resetAfter?: number | undefined;
  /** when set, sent right after the first content frame, then the stream ends */
  errorFrame?: string | undefined;
}

function write(ctx: Ctx, text: string): Promise<void> {
  return new Promise((resolve) => {
    if (ctx.signal.aborted) return resolve();
    ctx.res.write(text, () => resolve());
  });
}

/** Streams frames with the behaviour's pacing and mid-stream faults. */
export async function playSse(ctx: Ctx, frames: SseFrame[], opts: PlayOptions): Promise<void> {
  if (ctx.signal.aborted) return;
  ctx.res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
  });
  ctx.res.flushHeaders();
  let contentSent = 0;
  for (const [i, frame] of frames.entries()) {
    if (i > 0) await sleep(opts.chunkDelayMs, ctx.signal);
    if (ctx.signal.aborted) return;
    if (frame.content && opts.resetAfter !== undefined && contentSent >= opts.resetAfter) {
      ctx.resetConnection();
      return;
    }
    await write(ctx, frame.text);
    if (!frame.content) continue;
    contentSent += 1;
    if (opts.errorFrame !== undefined) {
      ctx.res.end(opts.errorFrame);
      return;
    }
  }
  if (!ctx.signal.aborted) ctx.res.end();
}

export function dataFrame(payload: unknown, content = false): SseFrame {
  return { text: `data: ${JSON.stringify(payload)}\n\n`, content };
}

export function eventFrame(event: string, payload: unknown, content = false): SseFrame {
  return { text: `event: ${event}\ndata: ${JSON.stringify(payload)}\n\n`, content };
}

// ---------------------------------------------------------------- JSON access

export type JsonObject = Record<string, unknown>;

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function asString(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

export function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

export function asInt(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) ? value : undefined;
}

// ---------------------------------------------------------------- ids

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

export function randomId(prefix: string, length = 24): string {
  const bytes = randomBytes(length);
  let out = prefix;
  for (const byte of bytes) out += ALPHABET[byte % ALPHABET.length];
  return out;
}
