import type { AuthKey } from '../accounts/key-store.js';
import { hashApiKey, KEY_PREFIX } from '../accounts/keys.js';
import { consoleGuards, hasSessionCookie, isBrowser } from '../console/access.js';
import { type Presented, presentedApiKey, presentedCredential, sameSecret } from './credentials.js';
import { ApiError } from './errors.js';
import type { AppContext, AppMiddleware } from './state.js';

/**
 * Who may call a route. Each route in the table (src/routes.ts) names one, and it runs first in that
 * route's own middleware chain, so routing and guarding cannot disagree.
 * - `customer`: `Authorization: Bearer sk-eastx-…` of a live key (SPEC §1); `x-api-key` too on routes with
 *   Anthropic's error shape (SPEC §1b)
 * - `operator`: `Bearer $ADMIN_TOKEN`; with `basic: true` also HTTP Basic with the token as password
 *   (a browser on Bull Board); every path is 404 while ADMIN_TOKEN is unset
 * - `metrics`: `Bearer $METRICS_TOKEN` (else the admin token); 404 while neither is set
 * - `public`: anyone
 * Console pages (SPEC §6, src/console/access.ts); on every one, a POST is a form whose CSRF token is checked
 * before the handler runs, and a browser gets HTML error pages:
 * - `visitor`: anyone (public pages, sign-up, log-in); a session, if any, is loaded
 * - `account`: a signed-in user; without a session a browser is redirected to /login, others get 401
 * - `operator-session`: an `is_admin` user's session or one opened with ADMIN_TOKEN; a customer gets 403
 * - `operator-browser` (Bull Board): the admin token as Bearer (or Basic password), or an operator session
 */
export type Guard = 'customer' | 'operator' | 'operator-browser' | 'metrics' | 'public' | 'visitor' | 'account' | 'operator-session';

/**
 * The customer's key: `Authorization: Bearer …`, or on Anthropic-dialect routes (SPEC §1b) also `x-api-key`
 * when there is no Authorization header, under the same strict rules (only space and tab stripped).
 */
function customerCredential(ctx: AppContext): Presented {
  const authorization = ctx.get('authorization');
  if (authorization === '' && ctx.state.errorShape === 'anthropic') return presentedApiKey(ctx.get('x-api-key'));
  return presentedCredential(authorization);
}

const customer: AppMiddleware = async (ctx, next) => {
  const presented = customerCredential(ctx);
  if (presented.kind !== 'bearer') {
    const how =
      ctx.state.errorShape === 'anthropic'
        ? 'x-api-key: sk-eastx-… or Authorization: Bearer sk-eastx-…'
        : 'Authorization: Bearer sk-eastx-…';
    throw new ApiError('missing_key', `missing API key: send ${how}`);
  }
  if (!presented.token.startsWith(KEY_PREFIX)) throw new ApiError('invalid_key', 'invalid API key');
  const { keyStore, rpm } = ctx.services;
  const keyHash = hashApiKey(presented.token);
  // a key this process knows as live: its RPM take goes out in the same write as the key check
  const cached = keyStore.peek(keyHash);
  const early = cached && isLive(cached) ? rpm.takeEarly(cached.id, cached.rpmLimit, ctx.state.requestId) : undefined;
  try {
    const { key, catalogVersion } = await keyStore.lookup(keyHash);
    // made with a key that changed since (its limit may have): taken back before anything else counts it afresh
    if (early && key !== cached) await early.drop();
    if (!key || key.status === 'revoked') throw new ApiError('invalid_key', 'invalid API key');
    if (key.status === 'disabled') throw new ApiError('disabled', 'this API key has been disabled');
    if (!isLive(key)) throw new ApiError('expired', 'this API key has expired');
    ctx.state.principal = { kind: 'customer', key, catalogVersion };
    ctx.state.earlyRpm = early;
    await next();
  } finally {
    await early?.drop(); // not used by the RPM step: the request ended before it (a 400, 404, 403 or 401)
  }
};

const isLive = (key: AuthKey) => key.status === 'active' && (key.expiresAt === null || key.expiresAt > Date.now());

/** Checks a shared secret (admin or metrics token) as a Bearer token, or also as a Basic password. */
function secretGuard(
  expectedOf: (ctx: AppContext) => string | undefined,
  principal: 'operator' | 'metrics',
  { basic }: { basic: boolean },
): AppMiddleware {
  const what = principal === 'metrics' ? 'Bearer $METRICS_TOKEN' : 'Bearer $ADMIN_TOKEN';
  return async (ctx, next) => {
    const expected = expectedOf(ctx);
    if (!expected) throw new ApiError('not_found', 'no such route');
    const presented = presentedCredential(ctx.get('authorization'));
    const given = presented.kind === 'bearer' ? presented.token : basic && presented.kind === 'basic' ? presented.password : undefined;
    if (basic) ctx.set('www-authenticate', 'Basic realm="eastx admin", charset="UTF-8"');
    if (given === undefined) throw new ApiError('missing_key', `authentication required: send Authorization: ${what}`);
    if (!sameSecret(given, expected)) throw new ApiError('invalid_key', 'invalid token');
    if (basic) ctx.remove('www-authenticate');
    ctx.state.principal = { kind: principal };
    await next();
  };
}

const adminToken = (ctx: AppContext) => ctx.services.config.adminToken;
const metricsToken = (ctx: AppContext) => ctx.services.config.metricsToken;
const boardToken = secretGuard(adminToken, 'operator', { basic: true });

/** Bull Board: a token if one is presented; else an operator session (a browser without one goes to /login). */
const operatorBrowser: AppMiddleware = (ctx, next) => {
  const useSession = !ctx.get('authorization') && (hasSessionCookie(ctx) || isBrowser(ctx));
  return useSession ? consoleGuards.board(ctx, next) : boardToken(ctx, next);
};

export const GUARDS: Record<Guard, AppMiddleware> = {
  customer,
  operator: secretGuard(adminToken, 'operator', { basic: false }),
  'operator-browser': operatorBrowser,
  metrics: secretGuard(metricsToken, 'metrics', { basic: false }),
  public: (_ctx, next) => next(),
  visitor: consoleGuards.visitor,
  account: consoleGuards.account,
  'operator-session': consoleGuards.operator,
};
