import type { RouterContext, RouterMiddleware } from '@koa/router';
import type { Span } from '@opentelemetry/api';
import type { Registry } from 'prom-client';
import type { AuthKey } from '../accounts/key-store.js';
import type { Reservation } from '../billing/reserve.js';
import type { CatalogSnapshot, Channel, Model, ModelRoute } from '../catalog/catalog.js';
import type { ConsoleSession, ConsoleUser } from '../console/sessions.js';
import type { EarlyTake } from '../limits/rpm.js';
import type { WebServices } from '../services.js';
import type { ErrorShape } from './error-shape.js';
import { ApiError } from './errors.js';

/** Who a request was authenticated as, by its route's guard (src/http/guards.ts). */
export type Principal =
  | { kind: 'customer'; key: AuthKey; catalogVersion: string | null }
  /**
   * a key this process holds as live, with the key's version and the catalog it holds, not yet checked against
   * Redis (src/http/guards.ts): admission's checks read it before the route's key step checks it; no handler
   * accepts it
   */
  | { kind: 'customer-claim'; key: AuthKey; keyHash: string; keyVersion: string; catalog: CatalogSnapshot; catalogVersion: string }
  | { kind: 'operator' }
  | { kind: 'metrics' }
  /** a console user signed in with email and password (src/console/guards.ts) */
  | { kind: 'account'; session: ConsoleSession; user: ConsoleUser }
  /** a console session allowed into the operator area: an `is_admin` user, or opened with ADMIN_TOKEN */
  | { kind: 'operator-session'; session: ConsoleSession; user: ConsoleUser | null };

/** Everything middleware puts on `ctx.state`, declared once. */
export interface AppState {
  requestId: string;
  /** How this route writes its errors (set by the router before the guard; absent = SPEC §2's shape). */
  errorShape?: ErrorShape;
  /** The request's root tracing span (a no-op unless OTEL_EXPORTER_OTLP_ENDPOINT is set). */
  span: Span;
  principal?: Principal;
  /** The RPM take the key step sent with the key check, for the RPM step (src/limits/rpm.ts). */
  earlyRpm?: EarlyTake;
  /** The parsed JSON body, read once, and the length of its text. */
  jsonBody?: unknown;
  bodyLength?: number;
  /**
   * Admission (src/api/admission.ts), step by step: when it began, the validated body, the model, the routes
   * that can serve the request and the home one among them (its channel: the job's queue), the hold.
   */
  admissionStartedAt?: number;
  body?: unknown;
  model?: Model;
  routes?: ModelRoute[];
  homeRoute?: number;
  channel?: Channel;
  reservation?: Reservation;
  /** GET /v1/responses/{id}: the stored response its lookup step found. */
  storedResponse?: Record<string, unknown>;
  /** Console pages: the visitor's session, if any, and the submitted form (already CSRF-checked). */
  session?: ConsoleSession;
  form?: Record<string, string>;
  /** The handler goes on writing the response after the middleware chain returned (see `detach`). */
  detached?: boolean;
}

/** What the app adds to every context: the process's shared services and its metrics registry. */
export interface AppExtensions {
  services: WebServices;
  metrics: Registry;
}

export type AppContext = RouterContext<AppState, AppExtensions>;
export type AppMiddleware = RouterMiddleware<AppState, AppExtensions>;

type PrincipalOf<K extends Principal['kind']> = Extract<Principal, { kind: K }>;

/**
 * The request's principal of the kind a handler needs. Handlers fail closed: whatever the routing did, a
 * handler reached without that principal answers 401, never runs and never 500s.
 */
export function principal<K extends Principal['kind']>(ctx: AppContext, kind: K): PrincipalOf<K> {
  const found = ctx.state.principal;
  if (found?.kind !== kind) throw new ApiError('missing_key', 'authentication required');
  return found as PrincipalOf<K>;
}

export const customerKey = (ctx: AppContext): AuthKey => principal(ctx, 'customer').key;

/**
 * The customer a request's checks before its key step go by: the checked key, or the claimed one (answers
 * wait for the key step, src/http/guards.ts).
 */
export function claimedCustomer(ctx: AppContext): { key: AuthKey; catalogVersion: string | null; catalog?: CatalogSnapshot } {
  const found = ctx.state.principal;
  if (found?.kind === 'customer-claim') return found;
  return principal(ctx, 'customer');
}

/**
 * The handler goes on writing the response after its middleware chain returns (a stream relayed detached,
 * src/api/relay-response.ts): whatever must last as long as the response waits for the response's `close`,
 * and what only the handler needed is let go.
 */
export function detach(ctx: AppContext): void {
  ctx.state.detached = true;
  // the request body (parsed, then validated) is in the job already: a long stream need not keep it, nor
  // what only admission used (the RPM take and its settled promise, the routes, the hold)
  ctx.state.jsonBody = undefined;
  ctx.state.body = undefined;
  ctx.state.earlyRpm = undefined;
  ctx.state.routes = undefined;
  ctx.state.reservation = undefined;
}
