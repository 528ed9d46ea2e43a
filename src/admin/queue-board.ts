import { createHash, timingSafeEqual } from 'node:crypto';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { KoaAdapter } from '@bull-board/koa';
import type { Context, Middleware } from 'koa';
import { ApiError } from '../http/errors.js';
import type { WebServices } from '../services.js';

export const BOARD_PATH = '/admin/queues';

const digest = (text: string) => createHash('sha256').update(text).digest();
const sameSecret = (given: string, expected: string) => timingSafeEqual(digest(given), digest(expected));

/** The operator's credential: `Bearer $ADMIN_TOKEN`, or HTTP Basic with the token as password (browsers). */
export function presentedAdminToken(ctx: Context): string | undefined {
  const header = ctx.get('authorization');
  const bearer = /^Bearer\s+(.+)$/i.exec(header)?.[1];
  if (bearer) return bearer.trim();
  const basic = /^Basic\s+(.+)$/i.exec(header)?.[1];
  if (!basic) return undefined;
  const decoded = Buffer.from(basic, 'base64').toString('utf8');
  return decoded.slice(decoded.indexOf(':') + 1);
}

/**
 * Bull Board at /admin/queues, one queue per channel, refreshed when the catalog changes. Guarded by the
 * ADMIN_TOKEN (Bearer, or Basic for a browser, which then gets the login prompt); 404 when the admin API is off.
 */
export function queueBoard(svc: WebServices): Middleware {
  const serverAdapter = new KoaAdapter().setBasePath(BOARD_PATH);
  const board = createBullBoard({ queues: [], serverAdapter, options: { uiConfig: { boardTitle: 'eastx queues' } } });
  const plugin = serverAdapter.registerPlugin();
  let shownVersion: string | undefined;

  const refresh = async () => {
    const catalog = await svc.catalog.current();
    if (catalog.version === shownVersion) return;
    board.replaceQueues([...catalog.channels.keys()].map((id) => new BullMQAdapter(svc.jobs.queue(id), { readOnlyMode: false })));
    shownVersion = catalog.version;
  };

  return async (ctx, next) => {
    if (ctx.path !== BOARD_PATH && !ctx.path.startsWith(`${BOARD_PATH}/`)) return next();
    const token = svc.config.adminToken;
    if (!token) throw new ApiError('not_found', 'no such route');
    const given = presentedAdminToken(ctx);
    if (!given || !sameSecret(given, token)) {
      ctx.set('www-authenticate', 'Basic realm="eastx admin", charset="UTF-8"');
      throw new ApiError('unauthorized', 'admin credentials required: Authorization: Bearer $ADMIN_TOKEN (or Basic with the token as password)');
    }
    await refresh();
    return plugin(ctx, next);
  };
}
