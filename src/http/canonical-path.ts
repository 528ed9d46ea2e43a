import type { Middleware } from 'koa';
import { ApiError } from './errors.js';

/** A path segment in canonical form: RFC 3986 pchar without `;`, percent-encoding only for reserved bytes. */
const SEGMENT = /^(?:[A-Za-z0-9\-._~!$&'()*+,=:@]|%[0-9A-F]{2})+$/;
/** Unreserved characters are never percent-encoded in a canonical path (`%61dmin` is not `admin`). */
const ENCODED_UNRESERVED = /%(?:[46][1-9A-F]|[57][0-9A]|3[0-9]|2D|2E|5F|7E)/;

/** Whether a request target is one canonical origin-form path (SPEC §1: routing is exact). */
export function isCanonicalTarget(target: string): boolean {
  if (!target.startsWith('/')) return false; // absolute-URI, authority or asterisk form
  const path = target.split('?', 1)[0];
  if (path === '/') return true;
  const segments = path.slice(1).split('/');
  return segments.every((s) => s !== '.' && s !== '..' && SEGMENT.test(s) && !ENCODED_UNRESERVED.test(s));
}

/**
 * Refuses every other spelling of a path (other case is left to the case-sensitive router; doubled slashes,
 * dot segments, `;` parameters, percent-encoded letters, absolute-URI targets) with 404 before any routing.
 */
export const canonicalPath = (): Middleware => async (ctx, next) => {
  if (!isCanonicalTarget(ctx.req.url ?? '')) throw new ApiError('not_found', 'no such route');
  await next();
};
