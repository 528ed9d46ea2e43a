import type { Context, Middleware } from 'koa';
import { log } from '../log.js';
import { errorBodyFor } from './error-shape.js';
import { ApiError } from './errors.js';

export function sendError(ctx: Context, error: ApiError): void {
  ctx.status = error.status;
  if (error.extra.retryAfter !== undefined) ctx.set('retry-after', String(error.extra.retryAfter));
  ctx.body = errorBodyFor(ctx.state.errorShape, error);
}

/** Koa errors from libraries (router, raw-body) carry a status; map them onto the SPEC §2 codes. */
function fromHttpStatus(status: number, message: string): ApiError | undefined {
  if (status === 404) return new ApiError('not_found', 'no such route');
  if (status === 405 || status === 501) return new ApiError('method_not_allowed', 'method not allowed on this route');
  if (status === 413) return new ApiError('request_too_large', 'request body is over the size limit');
  if (status === 400 || status === 415) return new ApiError('bad_request', message || 'malformed request');
  return undefined;
}

/** Every failure anywhere leaves as `{"error":{code,message,type}}` (or the route's shape: error-shape.ts); never a stack trace. */
export const errorBoundary = (): Middleware => async (ctx, next) => {
  try {
    await next();
    if (ctx.status === 404 && ctx.body === undefined && ctx.respond !== false) sendError(ctx, new ApiError('not_found', 'no such route'));
  } catch (err) {
    if (err instanceof ApiError) return sendError(ctx, err);
    const status = (err as { status?: number; statusCode?: number }).status ?? (err as { statusCode?: number }).statusCode;
    const mapped = status ? fromHttpStatus(status, (err as Error).message) : undefined;
    if (mapped) return sendError(ctx, mapped);
    if (ctx.headerSent || !ctx.writable) {
      log.error({ err, requestId: ctx.state.requestId }, 'error after response started');
      return;
    }
    log.error({ err: { message: (err as Error).message, stack: (err as Error).stack }, requestId: ctx.state.requestId }, 'unhandled error');
    sendError(ctx, new ApiError('internal_error', 'internal error'));
  }
};
