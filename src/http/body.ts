import type { ParameterizedContext } from 'koa';
import type { AppState } from './state.js';

type Context = ParameterizedContext<AppState>;

import getRawBody from 'raw-body';
import type { z } from 'zod';
import { ApiError, badRequest } from './errors.js';

/** SPEC §2: JSON nested deeper than this is refused before it is parsed. */
export const MAX_JSON_DEPTH = 64;
const SHOWN_SEGMENTS = 8;
const SHOWN_KEY_CHARS = 32;

/**
 * Index of the quote closing the JSON string that opens at `start`, or -1. Escapes only matter when a
 * backslash stands right before the first quote; then the string is walked character by character.
 */
function stringEnd(text: string, start: number): number {
  const quote = text.indexOf('"', start + 1);
  if (quote < 0 || text.charCodeAt(quote - 1) !== 0x5c /* \ */) return quote;
  for (let i = start + 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5c) i++;
    else if (c === 0x22 /* " */) return i;
  }
  return -1;
}

function keyText(text: string, start: number, end: number): string {
  const raw = text.slice(start, end + 1);
  let key: string;
  try {
    key = raw.length <= 4 * SHOWN_KEY_CHARS ? (JSON.parse(raw) as string) : raw.slice(1, -1);
  } catch {
    key = raw.slice(1, -1);
  }
  return key.length > SHOWN_KEY_CHARS ? `${key.slice(0, SHOWN_KEY_CHARS)}…` : key;
}

/**
 * The field path (`messages.0.extra.a…`, shortened) of the first array or object in JSON text nested deeper than
 * `maxDepth`, or null. One pass without recursion or parsing (string contents are mostly skipped with indexOf), so it
 * costs time linear in the text whatever its shape, and JSON.parse never sees a deep document. Malformed text
 * is left for JSON.parse to refuse.
 */
export function pathDeeperThan(text: string, maxDepth: number): string | null {
  // Per open container (1-based depth): array or object, the current element index, the current key's quotes.
  const isArray = new Uint8Array(maxDepth + 1);
  const index = new Uint32Array(maxDepth + 1);
  const keyStart = new Int32Array(maxDepth + 1).fill(-1);
  const keyEnd = new Int32Array(maxDepth + 1);
  const awaitingKey = new Uint8Array(maxDepth + 1);
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const end = stringEnd(text, i);
      if (end < 0) return null;
      if (awaitingKey[depth]) {
        keyStart[depth] = i;
        keyEnd[depth] = end;
        awaitingKey[depth] = 0;
      }
      i = end;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (depth === maxDepth) {
        const segments: string[] = [];
        for (let d = 1; d <= Math.min(maxDepth, SHOWN_SEGMENTS); d++) {
          segments.push(isArray[d] ? String(index[d]) : keyStart[d] >= 0 ? keyText(text, keyStart[d], keyEnd[d]) : '?');
        }
        return segments.join('.') + (maxDepth > SHOWN_SEGMENTS ? '…' : '');
      }
      depth++;
      isArray[depth] = c === 0x5b ? 1 : 0;
      index[depth] = 0;
      keyStart[depth] = -1;
      awaitingKey[depth] = c === 0x7b ? 1 : 0;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      if (depth > 0) depth--;
    } else if (c === 0x2c /* , */ && depth > 0) {
      if (isArray[depth]) index[depth]++;
      else awaitingKey[depth] = 1;
    }
  }
  return null;
}

/** Reads and JSON-parses the body once (cached on ctx.state), with the size and depth limits of SPEC §2. */
export async function readJson(ctx: Context, limitBytes: number): Promise<unknown> {
  if ('jsonBody' in ctx.state) return ctx.state.jsonBody;
  let text: string;
  try {
    text = await getRawBody(ctx.req, { limit: limitBytes, encoding: 'utf8', length: ctx.get('content-length') || undefined });
  } catch (err) {
    const type = (err as { type?: string }).type;
    if (type === 'entity.too.large') throw new ApiError('request_too_large', `request body is over the ${limitBytes} byte limit`);
    throw badRequest('could not read the request body');
  }
  ctx.state.bodyLength = text.length;
  if (text.trim() === '') throw badRequest('body: a JSON object is required');
  const deep = pathDeeperThan(text, MAX_JSON_DEPTH);
  if (deep) throw badRequest(`${deep}: nested deeper than ${MAX_JSON_DEPTH} levels`, deep);
  await yieldIfLarge(ctx);
  try {
    ctx.state.jsonBody = JSON.parse(text);
  } catch {
    throw badRequest('body: not valid JSON');
  }
  await yieldIfLarge(ctx);
  return ctx.state.jsonBody;
}

/** Bodies from this size on take tens of milliseconds per stage of work on them. */
const LARGE_BODY_CHARS = 1024 * 1024;

/**
 * Between the stages of work on a large body (scan, parse, validate, estimate, enqueue), lets the event
 * loop serve other requests first, so one big body costs them a few short waits instead of one long stall.
 */
export async function yieldIfLarge(ctx: Context): Promise<void> {
  if ((ctx.state.bodyLength ?? 0) >= LARGE_BODY_CHARS) await new Promise((resolve) => setImmediate(resolve));
}

/** First zod issue → "field.path: what is wrong". */
export function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid body';
  // an unknown field is named as the field itself (strict bodies only)
  const path = [...issue.path, ...(issue.code === 'unrecognized_keys' ? issue.keys.slice(0, 1) : [])].map(String).join('.') || 'body';
  return `${path}: ${issue.message}`;
}

export async function parseBody<T extends z.ZodType>(ctx: Context, schema: T, limitBytes: number): Promise<z.infer<T>> {
  const json = await readJson(ctx, limitBytes);
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw badRequest(describeIssue(parsed.error));
  await yieldIfLarge(ctx);
  return parsed.data;
}
