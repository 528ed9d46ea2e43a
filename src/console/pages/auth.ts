import { z } from 'zod';
import { hashPassword, verifyPassword } from '../../accounts/passwords.js';
import * as ops from '../../admin/operations/index.js';
import { type UserInput, userBody } from '../../admin/schemas.js';
import { sameSecret } from '../../http/credentials.js';
import { ApiError } from '../../http/errors.js';
import type { AppContext } from '../../http/state.js';
import { safeNext } from '../access.js';
import { noControlChars, validate } from '../form-input.js';
import { closeSession, openSession } from '../sessions.js';
import { clientIp, emailKey, throttles } from '../throttle.js';
import { redirect, render } from '../views.js';

/** Sign-up, log-in (email + password, or ADMIN_TOKEN for operators) and log-out. */

const WRONG = 'Wrong email or password.';
/** Compared against when the email is unknown, so a wrong email costs the same scrypt time as a wrong password. */
const decoy = hashPassword('eastx-decoy-password-never-matches');

const loginForm = z.object({
  email: z.string().trim().toLowerCase().max(254),
  password: z.string().max(200),
});

const formOf = (ctx: AppContext) => ctx.state.form ?? {};

export function showSignup(ctx: AppContext, error?: string, status = 200): void {
  render(ctx, 'signup.njk', { title: 'Sign up', error, email: formOf(ctx).email ?? '' }, status);
}

export async function signup(ctx: AppContext): Promise<void> {
  const form = formOf(ctx);
  const limits = throttles(ctx.services);
  await limits.refuseIfSpent([['signupPerIp', clientIp(ctx)]]);
  let input: UserInput;
  try {
    input = validate(userBody, { email: noControlChars('email', form.email) ?? '', password: form.password ?? '' });
  } catch (err) {
    if (err instanceof ApiError) return showSignup(ctx, err.message, 400);
    throw err;
  }
  await limits.count([['signupPerIp', clientIp(ctx)]]);
  let user: Awaited<ReturnType<typeof ops.createUser>>;
  try {
    user = await ops.createUser(ctx.services, { email: input.email, password: input.password ?? form.password, is_admin: false });
  } catch (err) {
    if (err instanceof ApiError && err.status === 400)
      return showSignup(ctx, 'An account with this email already exists: log in instead.', 400);
    throw err;
  }
  await openSession(ctx, { userId: user.id });
  redirect(ctx, '/keys');
}

export function showLogin(ctx: AppContext, error?: string, status = 200): void {
  const next = safeNext(ctx.query.next) ?? safeNext(formOf(ctx).next) ?? '';
  render(
    ctx,
    'login.njk',
    { title: 'Log in', error, email: formOf(ctx).email ?? '', next, adminLogin: ctx.services.config.adminToken !== undefined },
    status,
  );
}

/**
 * Checks the password (scrypt; the same work whether or not the email exists), throttled per IP and per
 * email. One message for every failure, so the page never tells whether an address has an account.
 */
export async function login(ctx: AppContext): Promise<void> {
  const form = formOf(ctx);
  const parsed = loginForm.safeParse({ email: form.email ?? '', password: form.password ?? '' });
  if (!parsed.success || parsed.data.email === '' || parsed.data.password === '') return showLogin(ctx, WRONG, 401);
  const { email, password } = parsed.data;
  const counters: Array<['loginPerIp' | 'loginPerEmail', string]> = [
    ['loginPerIp', clientIp(ctx)],
    ['loginPerEmail', emailKey(email)],
  ];
  const limits = throttles(ctx.services);
  await limits.refuseIfSpent(counters);
  const user = await ctx.services.db.selectFrom('users').select(['id', 'password_hash']).where('email', '=', email).executeTakeFirst();
  const ok = await verifyPassword(password, user?.password_hash ?? (await decoy));
  if (!user || !ok) {
    await limits.count(counters);
    return showLogin(ctx, WRONG, 401);
  }
  await limits.reset('loginPerEmail', emailKey(email));
  await openSession(ctx, { userId: Number(user.id) });
  redirect(ctx, safeNext(form.next) ?? '/keys');
}

export async function logout(ctx: AppContext): Promise<void> {
  await closeSession(ctx);
  redirect(ctx, '/');
}

/** The operator log-in with ADMIN_TOKEN exists only while ADMIN_TOKEN is set (404 otherwise, like the admin API). */
function adminTokenOrNotFound(ctx: AppContext): string {
  const token = ctx.services.config.adminToken;
  if (!token) throw new ApiError('not_found', 'no such route');
  return token;
}

export function showAdminLogin(ctx: AppContext, error?: string, status = 200): void {
  adminTokenOrNotFound(ctx);
  render(ctx, 'admin/login.njk', { title: 'Operator log-in', error }, status);
}

export async function adminLogin(ctx: AppContext): Promise<void> {
  const expected = adminTokenOrNotFound(ctx);
  const counters: Array<['loginPerIp' | 'adminPerDeployment', string]> = [
    ['loginPerIp', clientIp(ctx)],
    ['adminPerDeployment', 'admin-token'],
  ];
  const limits = throttles(ctx.services);
  await limits.refuseIfSpent(counters);
  const given = formOf(ctx).token ?? '';
  if (given === '' || !sameSecret(given, expected)) {
    await limits.count(counters);
    return showAdminLogin(ctx, 'Wrong admin token.', 401);
  }
  await openSession(ctx, { operatorToken: expected });
  redirect(ctx, '/admin');
}
