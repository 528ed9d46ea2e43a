import type { Middleware } from 'koa';
import { log } from '../log.js';
import type { AppState } from './state.js';

/** One JSON line per request, when its response ends: request id, route, status, time. Never bodies or secrets. */
export const accessLog = (): Middleware<AppState> => async (ctx, next) => {
  const started = performance.now();
  ctx.res.on('close', () => {
    const status = ctx.res.statusCode;
    const entry = {
      requestId: ctx.state.requestId,
      method: ctx.method,
      path: ctx.path,
      status,
      ms: Math.round(performance.now() - started),
      keyId: ctx.state.principal?.kind === 'customer' ? ctx.state.principal.key.id : undefined,
      aborted: !ctx.res.writableFinished || undefined,
    };
    if (status >= 500) log.warn(entry, 'request');
    else log.info(entry, 'request');
  });
  await next();
};
