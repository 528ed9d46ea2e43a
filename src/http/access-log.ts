import { log } from '../log.js';
import type { ResponseObserver } from './track-request.js';

/** One JSON line per request, when its response ends: request id, route, status, time. Never bodies or secrets. */
export const logRequest: ResponseObserver = (ctx, elapsedMs) => {
  const status = ctx.res.statusCode;
  const entry = {
    requestId: ctx.state.requestId,
    method: ctx.method,
    path: ctx.path,
    status,
    ms: Math.round(elapsedMs),
    keyId: ctx.state.principal?.kind === 'customer' ? ctx.state.principal.key.id : undefined,
    aborted: !ctx.res.writableFinished || undefined,
  };
  if (status >= 500) log.warn(entry, 'request');
  else log.info(entry, 'request');
};
