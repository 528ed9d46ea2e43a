import type { AppMiddleware } from './state.js';

/**
 * Once the process is stopping (SIGTERM), every answer closes its connection (`Connection: close`), so no
 * client sends another request on a kept-alive connection to a process about to exit. A stream's 200 goes
 * out before this runs: the SSE writer says `close` itself (src/http/sse.ts).
 */
export const closeWhenStopping = (): AppMiddleware => async (ctx, next) => {
  try {
    await next();
  } finally {
    // an error is answered by the error boundary around this: the header stays
    if (ctx.services.stopping) ctx.set('connection', 'close');
  }
};
