import { randomBytes } from 'node:crypto';
import type { Middleware } from 'koa';

export const newRequestId = () => `req_${randomBytes(12).toString('hex')}`;

/** Gives every request an id, exposed as `x-request-id` (for billed requests it is also the job and ledger id). */
export const requestId = (): Middleware => async (ctx, next) => {
  ctx.state.requestId = newRequestId();
  ctx.set('x-request-id', ctx.state.requestId);
  await next();
};
