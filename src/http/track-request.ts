import { randomUUID } from 'node:crypto';
import type { Context, Middleware } from 'koa';
import { startStage } from '../telemetry.js';
import type { AppState } from './state.js';

/** `req_` + 122 random bits (randomUUID draws from a cached entropy pool: cheap on the hot path). */
export const newRequestId = () => `req_${randomUUID().replaceAll('-', '')}`;

/** What is recorded of a request once its response closes (answered, or its client gone). */
export type ResponseObserver = (ctx: Context & { state: AppState }, elapsedMs: number) => void;

/**
 * Gives every request an id, exposed as `x-request-id` (for billed requests it is also the job and ledger id),
 * and a root span; when its response closes, ends the span and hands the request to each observer (metrics,
 * access log). One `close` listener for them all: a held stream keeps every listener and its closure for its
 * whole life (BENCHMARKS.md, thirteenth round).
 */
export const trackRequest =
  (observers: readonly ResponseObserver[]): Middleware<AppState> =>
  async (ctx, next) => {
    const startedAt = performance.now();
    ctx.state.requestId = newRequestId();
    ctx.set('x-request-id', ctx.state.requestId);
    const span = startStage('eastx.request');
    ctx.state.span = span;
    // a detached stream's response outlives the chain, so this waits for the response, not for next()
    ctx.res.on('close', () => {
      span.end();
      const elapsedMs = performance.now() - startedAt;
      for (const observe of observers) observe(ctx, elapsedMs);
    });
    await next();
  };
