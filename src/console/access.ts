import compose from 'koa-compose';
import { ApiError } from '../http/errors.js';
import type { AppContext, AppMiddleware } from '../http/state.js';
import { CSRF_FIELD, checkCsrf } from './csrf.js';
import { readForm } from './forms.js';
import { type ConsoleSession, type ConsoleUser, readSession, tokenFingerprint } from './sessions.js';
import { redirect, render } from './views.js';

/**
 * The steps console guards are made of (src/http/guards.ts composes them): who the visitor is, what a
 * visitor without the right session gets, and the CSRF check of every form post.
 */

/** A browser navigating (it asks for HTML first), as opposed to a script or an API client. */
export const isBrowser = (ctx: AppContext) => ctx.accepts('json', 'html') === 'html';

/** Console failures: an HTML page for a browser, the SPEC §2 JSON error for anything else. */
export const htmlErrors: AppMiddleware = async (ctx, next) => {
  try {
    await next();
  } catch (err) {
    if (!(err instanceof ApiError) || !isBrowser(ctx) || ctx.headerSent) throw err;
    if (err.extra.retryAfter !== undefined) ctx.set('retry-after', String(err.extra.retryAfter));
    render(ctx, 'error.njk', { status: err.status, code: err.code, message: err.message }, err.status);
  }
};

async function userOf(ctx: AppContext, userId: number): Promise<ConsoleUser | undefined> {
  const row = await ctx.services.db.selectFrom('users').select(['id', 'email', 'is_admin']).where('id', '=', userId).executeTakeFirst();
  return row && { id: Number(row.id), email: row.email, isAdmin: Boolean(row.is_admin) };
}

/** Whether an ADMIN_TOKEN session still matches the configured token (rotating the token ends them). */
const operatorTokenValid = (ctx: AppContext, session: ConsoleSession) =>
  session.operatorToken !== null &&
  ctx.services.config.adminToken !== undefined &&
  session.operatorToken === tokenFingerprint(ctx.services.config.adminToken);

/**
 * Loads the visitor's session (if any): a signed-in user becomes the `account` principal, an ADMIN_TOKEN
 * session (still matching the configured token) the `operator-session` one.
 */
export const loadSession: AppMiddleware = async (ctx, next) => {
  const session = await readSession(ctx);
  if (session) {
    ctx.state.session = session;
    const user = session.userId === null ? undefined : await userOf(ctx, session.userId);
    if (user) ctx.state.principal = { kind: 'account', session, user };
    else if (operatorTokenValid(ctx, session)) ctx.state.principal = { kind: 'operator-session', session, user: null };
  }
  await next();
};

/** Where to send a visitor after logging in: only a plain same-site path (no open redirect). */
export const safeNext = (next: unknown) => (typeof next === 'string' && /^\/(?!\/)[A-Za-z0-9/_.-]{0,200}$/.test(next) ? next : undefined);

/** A visitor without the session a page needs: a browser is sent to /login, anything else gets 401. */
function signInFirst(ctx: AppContext): void {
  if (isBrowser(ctx)) {
    const back = ctx.method === 'GET' ? safeNext(ctx.path) : undefined;
    return redirect(ctx, back && back !== '/' ? `/login?next=${encodeURIComponent(back)}` : '/login');
  }
  throw new ApiError('missing_key', 'this page needs a console session: log in at /login');
}

/** Pages of a signed-in customer (any user; operators too). */
export const requireAccount: AppMiddleware = async (ctx, next) => {
  if (ctx.state.principal?.kind !== 'account') return signInFirst(ctx);
  await next();
};

/** The operator area: an `is_admin` user's session, or one opened with ADMIN_TOKEN; a customer gets 403. */
export const requireOperator: AppMiddleware = async (ctx, next) => {
  const { principal } = ctx.state;
  if (principal?.kind === 'operator-session') {
    // an ADMIN_TOKEN session, checked against the current token by loadSession
  } else if (principal?.kind === 'account' && principal.user.isAdmin) {
    ctx.state.principal = { kind: 'operator-session', session: principal.session, user: principal.user };
  } else if (principal?.kind === 'account') {
    throw new ApiError('forbidden', 'the operator area is for operators only');
  } else {
    return signInFirst(ctx);
  }
  await next();
};

/** Every unsafe request of a console page is a form post carrying this visitor's CSRF token. */
export const formWithCsrf: AppMiddleware = async (ctx, next) => {
  if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
    const form = await readForm(ctx);
    checkCsrf(ctx, form[CSRF_FIELD]);
  }
  await next();
};

/**
 * Bull Board's own UI writes with fetch (JSON, no form token); with session auth those writes must come
 * from this origin's pages (the SameSite=Lax cookie already keeps cross-site writes from carrying it).
 */
export const sameOriginWrites: AppMiddleware = async (ctx, next) => {
  if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
    const site = ctx.get('sec-fetch-site');
    const origin = ctx.get('origin');
    if ((site && site !== 'same-origin') || (origin && origin !== ctx.origin)) throw new ApiError('forbidden', 'cross-site write refused');
  }
  await next();
};

/** The guard steps of the three kinds of console page. */
export const consoleGuards = {
  /** public pages and the log-in/sign-up forms */
  visitor: compose([htmlErrors, loadSession, formWithCsrf]),
  account: compose([htmlErrors, loadSession, requireAccount, formWithCsrf]),
  operator: compose([htmlErrors, loadSession, requireOperator, formWithCsrf]),
  /** Bull Board with a session: an operator's, and writes only from this origin */
  board: compose([htmlErrors, loadSession, requireOperator, sameOriginWrites]),
};

/** Whether the request carries a console session cookie at all (Bull Board: session or token?). */
export const hasSessionCookie = (ctx: AppContext) => ctx.cookies.get('eastx_session') !== undefined;
