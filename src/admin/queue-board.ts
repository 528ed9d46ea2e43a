import type { Middleware } from 'koa';
import type { Route } from '../http/router.js';
import { type AppContext, principal } from '../http/state.js';
import type { WebServices } from '../services.js';

export const BOARD_PATH = '/admin/queues';

/**
 * Bull Board, one queue per channel, refreshed when the catalog changes; loaded and built on first use per
 * process (its modules would otherwise slow every process's start-up).
 */
async function boardFor(svc: WebServices): Promise<Middleware> {
  const [{ createBullBoard }, { BullMQAdapter }, { KoaAdapter }] = await Promise.all([
    import('@bull-board/api'),
    import('@bull-board/api/bullMQAdapter'),
    import('@bull-board/koa'),
  ]);
  const serverAdapter = new KoaAdapter().setBasePath(BOARD_PATH);
  const board = createBullBoard({ queues: [], serverAdapter, options: { uiConfig: { boardTitle: 'eastx queues' } } });
  const plugin = serverAdapter.registerPlugin() as Middleware;
  let shownVersion: string | undefined;
  return async (ctx, next) => {
    const catalog = await svc.catalog.current();
    if (catalog.version !== shownVersion) {
      board.replaceQueues([...catalog.channels.keys()].map((id) => new BullMQAdapter(svc.jobs.queue(id), { readOnlyMode: false })));
      shownVersion = catalog.version;
    }
    await plugin(ctx, next);
  };
}

const boards = new WeakMap<WebServices, Promise<Middleware>>();

/** The board's own page needs inline styles (its loading screen, React); scripts stay 'self' only. */
const BOARD_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'; object-src 'none'";

async function serveBoard(ctx: AppContext, next: () => Promise<unknown>): Promise<void> {
  if (ctx.state.principal?.kind !== 'operator-session') principal(ctx, 'operator');
  ctx.set('content-security-policy', BOARD_CSP);
  let board = boards.get(ctx.services);
  if (!board) boards.set(ctx.services, (board = boardFor(ctx.services)));
  await (await board)(ctx, next);
}

/**
 * Bull Board at /admin/queues: the admin token as Bearer (or as the password of HTTP Basic), or an operator's
 * console session (a customer's session gets 403; a browser without one is sent to /login).
 */
export const boardRoutes: Route[] = [
  { method: 'ALL', path: BOARD_PATH, guard: 'operator-browser', handle: serveBoard },
  { method: 'ALL', path: `${BOARD_PATH}/*rest`, guard: 'operator-browser', handle: serveBoard },
];
