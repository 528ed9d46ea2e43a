import { randomBytes } from 'node:crypto';
import { sameSecret } from '../http/credentials.js';
import { ApiError } from '../http/errors.js';
import type { AppContext } from '../http/state.js';
import { cookieOptions } from './sessions.js';

/**
 * CSRF protection for every console form (synchronizer token). A signed-in visitor's forms carry their
 * session's token; a visitor without a session (sign-up, log-in) carries the token of a signed, HttpOnly
 * pre-session cookie instead (double submit), so anonymous pages need no server state. The session cookie
 * is also SameSite=Lax, so a cross-site POST does not even carry it.
 */
export const CSRF_FIELD = '_csrf';
const PRESESSION_COOKIE = 'eastx_csrf';
const TOKEN = /^[A-Za-z0-9_-]{43}$/;

function presessionToken(ctx: AppContext): string | undefined {
  const token = ctx.cookies.get(PRESESSION_COOKIE, { signed: true });
  return token && TOKEN.test(token) ? token : undefined;
}

/** The token this visitor's forms must carry (creates the pre-session cookie on first use). */
export function csrfToken(ctx: AppContext): string {
  if (ctx.state.session) return ctx.state.session.csrf;
  let token = presessionToken(ctx);
  if (!token) {
    token = randomBytes(32).toString('base64url');
    ctx.cookies.set(PRESESSION_COOKIE, token, cookieOptions(ctx));
  }
  return token;
}

/** 403 unless the submitted form carries this visitor's token; nothing has happened yet when it throws. */
export function checkCsrf(ctx: AppContext, submitted: string | undefined): void {
  const expected = ctx.state.session?.csrf ?? presessionToken(ctx);
  if (!expected || !submitted || !sameSecret(submitted, expected)) {
    throw new ApiError('forbidden', 'this form is missing its CSRF token or carries a wrong one: reload the page and submit it again');
  }
}
