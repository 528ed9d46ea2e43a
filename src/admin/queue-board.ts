import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { KoaAdapter } from '@bull-board/koa';
import type { Middleware } from 'koa';
import type { Route } from '../http/router.js';
import { principal, type AppContext } from '../http/state.js';
import type { WebServices } from '../services.js';

export const BOARD_PATH = '/admin/queues';

/** Bull Board, one queue per channel, refreshed when the catalog changes; built on first use per process. */
function boardFor(svc: WebServices): Middleware {
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

const boards = new WeakMap<WebServices, Middleware>();

async function serveBoard(ctx: AppContext, next: () => Promise<unknown>): Promise<void> {
  principal(ctx, 'operator');
  let board = boards.get(ctx.services);
  if (!board) boards.set(ctx.services, (board = boardFor(ctx.services)));
  await board(ctx, next);
}

/** Bull Board at /admin/queues: the admin token as Bearer, or for a browser as the password of HTTP Basic. */
export const boardRoutes: Route[] = [
  { method: 'ALL', path: BOARD_PATH, guard: 'operator-browser', handle: serveBoard },
  { method: 'ALL', path: `${BOARD_PATH}/*rest`, guard: 'operator-browser', handle: serveBoard },
];
