import { fileURLToPath } from 'node:url';
import nunjucks from 'nunjucks';
import { formatUsd } from '../billing/money.js';
import type { AppContext } from '../http/state.js';
import { CSRF_FIELD, csrfToken } from './csrf.js';

/**
 * Server-rendered pages: nunjucks with autoescape on, so every `{{ value }}` is HTML-escaped
 * (& < > " '); templates quote every attribute and never use `| safe`. Templates live next to this file
 * (copied into dist/ by scripts/copy-assets.mjs).
 */
const env = new nunjucks.Environment(new nunjucks.FileSystemLoader(fileURLToPath(new URL('./templates', import.meta.url))), {
  autoescape: true,
  throwOnUndefined: false,
  trimBlocks: true,
  lstripBlocks: true,
});

/** nano-USD (bigint, number or string) → "$1.25" with every significant digit kept. */
const usd = (nano: unknown) => {
  if (nano === null || nano === undefined || nano === '') return '—';
  const value = formatUsd(BigInt(nano as string));
  return value.startsWith('-') ? `−$${value.slice(1)}` : `$${value}`;
};
/** A decimal USD string from the admin presenters → "$1.25". */
const dollars = (text: unknown) =>
  text === null || text === undefined ? '—' : String(text).startsWith('-') ? `−$${String(text).slice(1)}` : `$${String(text)}`;
/** An ISO time or Date → "2030-01-31 12:00 UTC". */
const when = (value: unknown) => {
  if (value === null || value === undefined || value === '') return '—';
  const date = new Date(value as string);
  return Number.isNaN(date.getTime()) ? '—' : `${date.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
};
env.addFilter('usd', usd);
env.addFilter('dollars', dollars);
env.addFilter('when', when);

/** The deployment's own base URL, as the visitor reached it (X-Forwarded-Proto/Host behind Heroku's router). */
export const baseUrlOf = (ctx: AppContext) => `${ctx.protocol}://${ctx.host}/v1`;

/** Who is looking, for the navigation. */
function viewer(ctx: AppContext) {
  const p = ctx.state.principal;
  if (p?.kind === 'account') return { email: p.user.email, customer: true, operator: p.user.isAdmin };
  if (p?.kind === 'operator-session')
    return p.user
      ? { email: p.user.email, customer: true, operator: true }
      : { email: 'operator (admin token)', customer: false, operator: true };
  return null;
}

/** Renders a page with the layout's common data (viewer, CSRF token, current path). Pages are never cached. */
export function render(ctx: AppContext, template: string, data: Record<string, unknown> = {}, status = 200): void {
  const html = env.render(template, {
    viewer: viewer(ctx),
    signedIn: Boolean(ctx.state.session),
    // read only by pages with a form, so a page without one sets no pre-session cookie
    csrf: {
      field: CSRF_FIELD,
      get token() {
        return csrfToken(ctx);
      },
    },
    path: ctx.path,
    ...data,
  });
  ctx.status = status;
  ctx.type = 'text/html; charset=utf-8';
  ctx.set('cache-control', 'no-store');
  ctx.body = html;
}

/** 303 See Other: after a form post, the browser GETs the next page (post → redirect → get). */
export function redirect(ctx: AppContext, location: string): void {
  ctx.status = 303;
  ctx.set('location', location);
  ctx.set('cache-control', 'no-store');
  ctx.body = '';
}
