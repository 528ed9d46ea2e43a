import helmet from 'helmet';
import type { Middleware } from 'koa';

/**
 * Security headers on every response (helmet): a CSP without inline script or style (the console's pages
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

export const securityHeaders = (): Middleware => (ctx, next) =>
  new Promise<void>((resolve, reject) => {
    headers(ctx.req, ctx.res, (err?: unknown) => (err ? reject(err) : resolve()));
  }).then(() => next());
