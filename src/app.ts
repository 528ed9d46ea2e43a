import Koa from 'koa';
import { cookieKeys } from './console/sessions.js';
import { logRequest } from './http/access-log.js';
import { canonicalPath } from './http/canonical-path.js';
import { closeWhenStopping } from './http/close-when-stopping.js';
import { errorBoundary } from './http/error-boundary.js';
import { createMetrics } from './http/metrics.js';
import { routerFor, unmatchedFor } from './http/router.js';
import { securityHeaders } from './http/security-headers.js';
import type { AppExtensions, AppState } from './http/state.js';
import { trackRequest } from './http/track-request.js';
import { ROUTES } from './routes.js';
import type { WebServices } from './services.js';

/**
 * The web process's Koa app: request id and span (metrics and access log when the response closes), error
 * boundary and, once the process stops, `Connection: close` first; then only canonical paths reach the route
 * table, where each route runs its own guard before its handler.
 */
export function createApp(svc: WebServices): Koa<AppState, AppExtensions> {
  const app = new Koa<AppState, AppExtensions>({ proxy: true });
  app.silent = true;
  app.keys = cookieKeys(svc.config.appSecret); // signs the console's cookies
  const metrics = createMetrics(svc);
  app.context.services = svc;
  app.context.metrics = metrics.registry;
  const router = routerFor(ROUTES);
  app.use(trackRequest([metrics.record, logRequest]));
  app.use(securityHeaders());
  app.use(errorBoundary());
  app.use(closeWhenStopping());
  app.use(canonicalPath());
  app.use(unmatchedFor(ROUTES));
  app.use(router.routes());
  return app;
}
