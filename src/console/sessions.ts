import { createHash, hkdfSync, randomBytes } from 'node:crypto';
import Keygrip from 'keygrip';
import type { Context } from 'koa';
import { z } from 'zod';
import type { AppContext } from '../http/state.js';

/**
 * Console sessions, kept server-side in Redis. The visitor's cookie holds a random 256-bit id, signed by
 * Koa's cookie signing (Keygrip, HMAC-SHA256 under a key derived from APP_SECRET); Redis holds the session
 * under the id's SHA-256, so neither Redis nor a log ever holds an id that opens a session.
 */
export interface ConsoleSession {
  /** sha256 of the id: the Redis key part */
  hash: string;
  userId: number | null;
  /** sessions opened with ADMIN_TOKEN: a fingerprint of that token (a rotated token ends them) */
  operatorToken: string | null;
  /** the synchronizer token every form of this session carries */
  csrf: string;
  createdAt: number;
}

export interface ConsoleUser {
  id: number;
  email: string;
  isAdmin: boolean;
}

export const SESSION_COOKIE = 'eastx_session';
const USER_TTL_MS = 7 * 24 * 3600_000;
const OPERATOR_TTL_MS = 12 * 3600_000;

const stored = z.object({
  userId: z.number().int().positive().nullable(),
  operatorToken: z.string().nullable(),
  csrf: z.string().min(32),
  createdAt: z.number(),
});

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** The fingerprint of an admin token that an operator session remembers (never the token itself). */
export const tokenFingerprint = (token: string) => sha256(`eastx-operator-session:${token}`);

/** Keys for Koa's signed cookies (`app.keys`), derived from APP_SECRET. */
export function cookieKeys(appSecret: string): Keygrip {
  const key = Buffer.from(hkdfSync('sha256', appSecret, 'eastx', 'console-cookie-signing', 32)).toString('base64url');
  return new Keygrip([key], 'sha256', 'base64url');
}

/** Cookie options: HttpOnly, SameSite=Lax, Secure when the request came over HTTPS (X-Forwarded-Proto). */
export const cookieOptions = (ctx: Context, maxAge?: number) => ({
  httpOnly: true,
  sameSite: 'lax' as const,
  secure: ctx.secure,
  signed: true,
  path: '/',
  overwrite: true,
  ...(maxAge === undefined ? {} : { maxAge }),
});

/** The session the request's cookie names, if it is signed, known and still valid. */
export async function readSession(ctx: AppContext): Promise<ConsoleSession | undefined> {
  const id = ctx.cookies.get(SESSION_COOKIE, { signed: true });
  if (!id || !/^[A-Za-z0-9_-]{43}$/.test(id)) return undefined;
  const hash = sha256(id);
  const raw = await ctx.services.redis.get(ctx.services.keys.session(hash));
  if (raw === null) return undefined;
  let parsed: ReturnType<typeof stored.safeParse>;
  try {
    parsed = stored.safeParse(JSON.parse(raw));
  } catch {
    return undefined;
  }
  return parsed.success ? { hash, ...parsed.data } : undefined;
}

/**
 * Opens a new session (a new id, never the one the visitor came with, so a planted cookie is worthless)
 * and ends the one the request carried, if any.
 */
export async function openSession(ctx: AppContext, who: { userId: number } | { operatorToken: string }): Promise<ConsoleSession> {
  await closeSession(ctx);
  const id = randomBytes(32).toString('base64url');
  const ttl = 'userId' in who ? USER_TTL_MS : OPERATOR_TTL_MS;
  const session: ConsoleSession = {
    hash: sha256(id),
    userId: 'userId' in who ? who.userId : null,
    operatorToken: 'operatorToken' in who ? tokenFingerprint(who.operatorToken) : null,
    csrf: randomBytes(32).toString('base64url'),
    createdAt: Date.now(),
  };
  const { hash, ...record } = session;
  await ctx.services.redis.set(ctx.services.keys.session(hash), JSON.stringify(record), 'PX', ttl);
  ctx.cookies.set(SESSION_COOKIE, id, cookieOptions(ctx, ttl));
  ctx.state.session = session;
  return session;
}

/** Ends the request's session (Redis and cookie). */
export async function closeSession(ctx: AppContext): Promise<void> {
  const current = ctx.state.session ?? (await readSession(ctx));
  if (current) await ctx.services.redis.del(ctx.services.keys.session(current.hash), ctx.services.keys.flash(current.hash));
  if (ctx.cookies.get(SESSION_COOKIE)) ctx.cookies.set(SESSION_COOKIE, null, cookieOptions(ctx));
  ctx.state.session = undefined;
}

/**
 * A message for the next page of this session only (post → redirect → get). Sealed with the app's
 * AES-GCM box, since it may carry a new API key for the one page that shows it.
 */
export interface Flash {
  notice?: string;
  newKey?: string;
  /** redemption codes just minted (the operator area shows them once) */
  codes?: string[];
}

const FLASH_TTL_S = 300;

export async function setFlash(ctx: AppContext, session: ConsoleSession, flash: Flash): Promise<void> {
  const sealed = ctx.services.secrets.seal(JSON.stringify(flash));
  await ctx.services.redis.set(ctx.services.keys.flash(session.hash), sealed, 'EX', FLASH_TTL_S);
}

/** The flash, once: read and deleted in one command (`when` false: leave it for a later page). */
export async function takeFlash(ctx: AppContext, session: ConsoleSession, when = true): Promise<Flash> {
  if (!when) return {};
  const sealed = await ctx.services.redis.getdel(ctx.services.keys.flash(session.hash));
  if (sealed === null) return {};
  try {
    const flash = JSON.parse(ctx.services.secrets.open(sealed)) as Flash;
    return {
      notice: typeof flash.notice === 'string' ? flash.notice : undefined,
      newKey: typeof flash.newKey === 'string' ? flash.newKey : undefined,
      codes: Array.isArray(flash.codes) ? flash.codes.filter((c) => typeof c === 'string') : undefined,
    };
  } catch {
    return {};
  }
}
