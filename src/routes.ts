import { sql } from 'kysely';
import { boardRoutes } from './admin/queue-board.js';
import { adminRoutes } from './admin/routes.js';
import { apiRoutes } from './api/routes.js';
import { consoleRoutes } from './console/routes.js';
import { serveMetrics } from './http/metrics.js';
import type { Route } from './http/router.js';
import type { AppContext } from './http/state.js';
import { serveOpenApi } from './openapi.js';

async function readiness(ctx: AppContext): Promise<void> {
  const svc = ctx.services;
  const checks = await Promise.allSettled([sql`SELECT 1`.execute(svc.db), svc.redis.ping()]);
  const [mysql, redis] = checks.map((c) => (c.status === 'fulfilled' ? 'ok' : 'down'));
  ctx.status = mysql === 'ok' && redis === 'ok' ? 200 : 503;
  ctx.body = { status: ctx.status === 200 ? 'ready' : 'unavailable', mysql, redis };
}

const operationsRoutes: Route[] = [
  { method: 'GET', path: '/healthz', guard: 'public', handle: (ctx) => void (ctx.body = { status: 'ok' }) },
  { method: 'GET', path: '/readyz', guard: 'public', handle: readiness },
  { method: 'GET', path: '/metrics', guard: 'metrics', handle: serveMetrics },
  { method: 'GET', path: '/openapi.json', guard: 'public', handle: (ctx) => serveOpenApi(ctx, ROUTES) },
];

/**
 * Every route of the web process, each with its guard (src/http/guards.ts). A path not in this table, or
 * spelled any other way, is 404 before any handler runs; tests generate their attack matrix from it.
 */
export const ROUTES: Route[] = [...operationsRoutes, ...apiRoutes, ...adminRoutes, ...boardRoutes, ...consoleRoutes];
