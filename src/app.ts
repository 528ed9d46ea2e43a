import Koa from 'koa';
import Router from '@koa/router';
import { sql } from 'kysely';
import { queueBoard } from './admin/queue-board.js';
import { adminRouter } from './admin/routes.js';
import { createChatCompletion } from './api/chat.js';
import { createEmbeddings } from './api/embeddings.js';
import { createImages } from './api/images.js';
import { listModels, retrieveModel } from './api/models.js';
import { accessLog } from './http/access-log.js';
import { apiKeyAuth } from './http/auth.js';
import { errorBoundary } from './http/error-boundary.js';
import { createMetrics } from './http/metrics.js';
import { requestId } from './http/request-id.js';
import type { WebServices } from './services.js';

function v1Router(svc: WebServices): Router {
  const router = new Router({ prefix: '/v1' });
  router.use(apiKeyAuth(svc.keyStore));
  router.get('/models', (ctx) => listModels(ctx, svc));
  router.get('/models/*id', (ctx) => retrieveModel(ctx, svc));
  router.post('/chat/completions', (ctx) => createChatCompletion(ctx, svc));
  router.post('/embeddings', (ctx) => createEmbeddings(ctx, svc));
  router.post('/images/generations', (ctx) => createImages(ctx, svc));
  return router;
}

function operationsRouter(svc: WebServices, metricsEndpoint: ReturnType<typeof createMetrics>['endpoint']): Router {
  const router = new Router();
  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    const checks = await Promise.allSettled([sql`SELECT 1`.execute(svc.db), svc.redis.ping()]);
    const [mysql, redis] = checks.map((c) => (c.status === 'fulfilled' ? 'ok' : 'down'));
    ctx.status = mysql === 'ok' && redis === 'ok' ? 200 : 503;
    ctx.body = { status: ctx.status === 200 ? 'ready' : 'unavailable', mysql, redis };
  });
  router.get('/metrics', metricsEndpoint);
  return router;
}

/** The web process's Koa app: request id, metrics, access log and error boundary first, then each surface. */
export function createApp(svc: WebServices): Koa {
  const app = new Koa({ proxy: true });
  app.silent = true;
  const metrics = createMetrics(svc);
  app.use(requestId());
  app.use(metrics.observe);
  app.use(accessLog());
  app.use(errorBoundary());
  app.use(queueBoard(svc));
  for (const router of [operationsRouter(svc, metrics.endpoint), v1Router(svc), adminRouter(svc)]) {
    app.use(router.routes());
    app.use(router.allowedMethods({ throw: true }));
  }
  return app;
}
