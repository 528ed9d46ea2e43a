import { randomUUID } from 'node:crypto';
import type { Middleware } from 'koa';

/** `req_` + 122 random bits (randomUUID draws from a cached entropy pool: cheap on the hot path). */
export const newRequestId = () => `req_${randomUUID().replaceAll('-', '')}`;

/** Gives every request an id, exposed as `x-request-id` (for billed requests it is also the job and ledger id). */
export const requestId = (): Middleware => async (ctx, next) => {
  ctx.state.requestId = newRequestId();
  ctx.set('x-request-id', ctx.state.requestId);
  await next();
};
