import Koa from 'koa';
import Router from '@koa/router';
import { sql } from 'kysely';
import { adminRouter } from './admin/routes.js';
import { createChatCompletion } from './api/chat.js';
import { listModels, retrieveModel } from './api/models.js';
import { apiKeyAuth } from './http/auth.js';
import { errorBoundary } from './http/error-boundary.js';
import { requestId } from './http/request-id.js';
import type { WebServices } from './services.js';

function v1Router(svc: WebServices): Router {
  const router = new Router({ prefix: '/v1' });
  router.use(apiKeyAuth(svc.keyStore));
  router.get('/models', (ctx) => listModels(ctx, svc));
  router.get('/models/*id', (ctx) => retrieveModel(ctx, svc));
  router.post('/chat/completions', (ctx) => createChatCompletion(ctx, svc));
  return router;
}

function healthRouter(svc: WebServices): Router {
  const router = new Router();
  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    await Promise.all([sql`SELECT 1`.execute(svc.db), svc.redis.ping()]);
    ctx.body = { status: 'ready' };
  });
  return router;
}

/** The web process's Koa app: request id and error boundary first, then each surface's router. */
export function createApp(svc: WebServices): Koa {
  const app = new Koa({ proxy: true });
  app.silent = true;
  app.use(requestId());
  app.use(errorBoundary());
  for (const router of [healthRouter(svc), v1Router(svc), adminRouter(svc)]) {
    app.use(router.routes());
    app.use(router.allowedMethods({ throw: true }));
  }
  return app;
}
