import helmet from 'helmet';
import type { Middleware } from 'koa';

/**
 * Security headers on every page and operator response (helmet): a CSP without inline script or style (the console's pages
 * use one stylesheet and one script of their own), no framing (CSP frame-ancestors and X-Frame-Options
 * DENY), nosniff, Referrer-Policy same-origin (so same-origin posts still carry a real Origin), HSTS.
 * Bull Board's page relaxes style-src for itself (src/admin/queue-board.ts).
 */
const headers = helmet({
  contentSecurityPolicy: {
    useDefaults: false,
    directives: {
      defaultSrc: ["'self'"],
      scriptSrc: ["'self'"],
      styleSrc: ["'self'"],
      imgSrc: ["'self'", 'data:'],
      fontSrc: ["'self'"],
      connectSrc: ["'self'"],
      objectSrc: ["'none'"],
      baseUri: ["'self'"],
      formAction: ["'self'"],
      frameAncestors: ["'none'"],
    },
  },
  frameguard: { action: 'deny' },
  referrerPolicy: { policy: 'same-origin' },
  crossOriginResourcePolicy: { policy: 'same-origin' },
});

/**
 * `/v1` answers JSON and event streams to API clients, never a page: the short set OWASP's REST Security
 * Cheat Sheet recommends for APIs (no content of its own, no framing, nosniff, HSTS). A held stream keeps
 * its response's header block for as long as it is open, so each line counts.
 */
const API_HEADERS: ReadonlyArray<[string, string]> = [
  ['content-security-policy', "default-src 'none'; frame-ancestors 'none'"],
  ['x-content-type-options', 'nosniff'],
  ['x-frame-options', 'DENY'],
  ['strict-transport-security', 'max-age=31536000; includeSubDomains'],
];

export const securityHeaders = (): Middleware => (ctx, next) => {
  if (ctx.path.startsWith('/v1/')) {
    for (const [name, value] of API_HEADERS) ctx.res.setHeader(name, value);
    return next();
  }
  return new Promise<void>((resolve, reject) => {
    headers(ctx.req, ctx.res, (err?: unknown) => (err ? reject(err) : resolve()));
  }).then(() => next());
};
