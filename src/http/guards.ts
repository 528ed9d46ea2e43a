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

/**
 * The guard only claims the key: it is checked at the route's key step (the model step before RPM, or the RPM
 * step), after the body has been read, so that a key changed while a slow body came in is still caught, and
 * so that the check rides in one Redis write with the request's RPM take, which is then made only for a
 * request its body and model checks admitted (exact counting, SPEC §4). A key this process does not hold as
 * live is also checked here first, so a bad key is refused before anything of its request is read. Until the
 * key step the principal is a claim, which only admission's checks read and no handler accepts (`principal`
 * answers 401); a request refused before it is answered after its key is checked, so a bad key still comes
 * first (SPEC §2).
 */
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
  const { keyStore, catalog } = ctx.services;
  const keyHash = hashApiKey(presented.token);
  const cached = keyStore.peek(keyHash);
  const held = catalog.loaded();
  const claimed =
    cached?.key && isLive(cached.key) && held
      ? { key: cached.key, keyVersion: cached.version, catalog: held }
      : await checkedNow(ctx, keyHash);
  ctx.state.principal = { kind: 'customer-claim', keyHash, ...claimed, catalogVersion: claimed.catalog.version };
  try {
    await next();
  } catch (err) {
    await confirmCustomer(ctx, { countsRpm: false }); // refused before its key step: the key's error comes first
    throw err;
  } finally {
    await ctx.state.earlyRpm?.drop(); // a take the RPM step did not use (nothing ends a request between them)
  }
  await confirmCustomer(ctx, { countsRpm: false }); // a route without a key step answers for a checked key only
};

/** The claim of a key this process does not hold as live: read now, and refused at once when it is bad. */
async function checkedNow(ctx: AppContext, keyHash: string) {
  const found = await ctx.services.keyStore.lookup(keyHash);
  const key = liveKey(found.key);
  return { key, keyVersion: found.version, catalog: await ctx.services.catalog.at(found.catalogVersion) };
}

/** A key as read, if it may be used now; else the error it gets (SPEC §1). */
function liveKey(key: AuthKey | null): AuthKey {
  if (!key || key.status === 'revoked') throw new ApiError('invalid_key', 'invalid API key');
  if (key.status === 'disabled') throw new ApiError('disabled', 'this API key has been disabled');
  if (!isLive(key)) throw new ApiError('expired', 'this API key has expired');
  return key;
}

/**
 * The key step of a customer route: checks the claimed key (see `customer`; once it is checked, nothing is
 * left to check), the request's RPM take riding in the same Redis write when `countsRpm`. `check`
 * is the route's model step, run against the claim first; a request it refuses is not counted, and its
 * refusal is answered after the key's own. With `takesSlot` the take also takes the key's concurrency slot (see
 * the RPM step). When the key or the catalog changed since the claim, Redis does not
 * make the take (see RpmLimiter.takeEarly) and `check` runs again against what is current (the RPM step then
 * counts afresh).
 */
export async function confirmCustomer(
  ctx: AppContext,
  { check, countsRpm, takesSlot = false }: { check?: () => Promise<void>; countsRpm: boolean; takesSlot?: boolean },
): Promise<void> {
  const claim = ctx.state.principal;
  if (claim?.kind !== 'customer-claim') return check?.();
  const { keyStore, rpm, concurrency } = ctx.services;
  let refusal: unknown;
  if (check) await check().catch((err: unknown) => (refusal = err ?? new Error('refused')));
  const { id, rpmLimit, maxConcurrent } = claim.key;
  const slot = takesSlot && maxConcurrent !== null ? concurrency.slotFor(id, maxConcurrent) : undefined;
  const early = countsRpm && !refusal ? rpm.takeEarly(id, rpmLimit, ctx.state.requestId, claim, slot) : undefined;
  const { key, catalogVersion } = await keyStore.lookup(claim.keyHash); // sent in the same turn as the take
  const unchanged = key === claim.key && (catalogVersion ?? '') === claim.catalogVersion;
  try {
    ctx.state.principal = { kind: 'customer', key: liveKey(key), catalogVersion };
  } catch (keyError) {
    ctx.state.principal = undefined; // checked and refused: nothing left to check
    await early?.drop(); // a key that expired since the claim, unchanged otherwise: its take was made
    throw keyError;
  }
  if (!unchanged) {
    await early?.drop(); // only a take made before a change that landed before the key check
    return check?.();
  }
  if (refusal) throw refusal;
  ctx.state.earlyRpm = early;
}

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
