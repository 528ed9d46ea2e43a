import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AppContext, AppMiddleware } from '../http/state.js';

/** The console's two static files (stylesheet, copy-button script), read once and served from memory. */
function asset(name: string, type: string): AppMiddleware {
  const body = readFileSync(new URL(`./static/${name}`, import.meta.url));
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 16)}"`;
  return (ctx: AppContext) => {
    ctx.set('cache-control', 'public, max-age=300');
    ctx.etag = etag;
    ctx.type = type;
    ctx.status = 200;
    if (ctx.fresh) {
      ctx.status = 304;
      return;
    }
    ctx.body = body;
  };
}

export const stylesheet = asset('eastx.css', 'text/css; charset=utf-8');
export const script = asset('console.js', 'text/javascript; charset=utf-8');
