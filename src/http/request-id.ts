import { randomUUID } from 'node:crypto';
import type { Middleware } from 'koa';
import { startStage } from '../telemetry.js';
import type { AppState } from './state.js';

/** `req_` + 122 random bits (randomUUID draws from a cached entropy pool: cheap on the hot path). */
export const newRequestId = () => `req_${randomUUID().replaceAll('-', '')}`;

/** Gives every request an id, exposed as `x-request-id` (for billed requests it is also the job and ledger id). */
export const requestId = (): Middleware<AppState> => async (ctx, next) => {
  ctx.state.requestId = newRequestId();
  ctx.set('x-request-id', ctx.state.requestId);
  const span = startStage('eastx.request');
  ctx.state.span = span;
  ctx.res.on('close', () => span.end()); // a detached stream's response outlives the chain
  await next();
};
