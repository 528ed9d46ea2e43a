import getRawBody from 'raw-body';
import type { Context } from 'koa';
import type { z } from 'zod';
import { ApiError, badRequest } from './errors.js';

/** Reads and JSON-parses the body once (cached on ctx.state), with the size limit of SPEC §2. */
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
  if (text.trim() === '') throw badRequest('body: a JSON object is required');
  try {
    ctx.state.jsonBody = JSON.parse(text);
  } catch {
    throw badRequest('body: not valid JSON');
  }
  return ctx.state.jsonBody;
}

/** First zod issue → "field.path: what is wrong". */
export function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid body';
  const path = issue.path.map(String).join('.') || 'body';
  return `${path}: ${issue.message}`;
}

export async function parseBody<T extends z.ZodType>(ctx: Context, schema: T, limitBytes: number): Promise<z.infer<T>> {
  const json = await readJson(ctx, limitBytes);
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw badRequest(describeIssue(parsed.error));
  return parsed.data;
}
