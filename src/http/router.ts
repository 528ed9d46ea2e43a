import Router from '@koa/router';
import type { ErrorShape } from './error-shape.js';
import { ApiError } from './errors.js';
import { GUARDS, type Guard } from './guards.js';
import type { AppContext, AppExtensions, AppMiddleware, AppState } from './state.js';

export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/**
 * One row of the route table: an exact, case-sensitive path (path-to-regexp syntax), its guard, and the
 * middleware that handles it. The guard is the first middleware of the route's own chain.
 */
export interface Route {
  method: Method | 'ALL';
  path: string;
  guard: Guard;
  handle: AppMiddleware | AppMiddleware[];
  /**
   * The shape of this route's errors, its guard's included (SPEC §1b); absent = SPEC §2's. `anthropic` also
   * lets the `customer` guard take the key from `x-api-key`, as Anthropic's clients send it.
   */
  errors?: ErrorShape;
}

const withErrorShape =
  (shape: ErrorShape): AppMiddleware =>
  (ctx, next) => {
    ctx.state.errorShape = shape;
    // Anthropic's SDKs read a request's id (`err.requestID`, `_request_id`) from `request-id`
    if (shape === 'anthropic') ctx.set('request-id', ctx.state.requestId);
    return next();
  };

/** The route table as one Koa router: case-sensitive, strict about trailing slashes, guard first per route. */
export function routerFor(routes: Route[]): Router<AppState, AppExtensions> {
  const router = new Router<AppState, AppExtensions>({ sensitive: true, strict: true });
  for (const route of routes) {
    const methods = route.method === 'ALL' ? ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] : [route.method];
    const handle = Array.isArray(route.handle) ? route.handle : [route.handle];
    const shape = route.errors ? [withErrorShape(route.errors)] : [];
    router.register(route.path, methods, [...shape, GUARDS[route.guard], ...handle]);
  }
  return router;
}

/**
 * After routing: a path that some route serves with another method is 405 (in that route's error shape),
 * anything else 404. (Koa router's allowedMethods would also answer OPTIONS for every route; nothing here
 * needs preflight.)
 */
export function unmatchedFor(routes: Route[]): AppMiddleware {
  const shapes = new Map(routes.filter((r) => r.errors).map((r) => [r.path, r.errors]));
  return async (ctx: AppContext, next) => {
    await next();
    const served = ctx.matched?.filter((layer) => layer.methods.length > 0) ?? [];
    if (served.length > 0 && !ctx.routeMatched) {
      ctx.state.errorShape = served.map((layer) => shapes.get(layer.path as string)).find(Boolean);
      throw new ApiError('method_not_allowed', 'method not allowed on this route');
    }
  };
}
