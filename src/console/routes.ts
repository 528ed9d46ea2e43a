import type { Route } from '../http/router.js';
import type { AppContext } from '../http/state.js';
import * as catalog from './pages/admin-catalog.js';
import * as codes from './pages/admin-codes.js';
import * as users from './pages/admin-users.js';
import * as auth from './pages/auth.js';
import * as keys from './pages/keys.js';
import * as pub from './pages/public.js';
import * as recharge from './pages/recharge.js';
import * as usage from './pages/usage.js';
import { script, stylesheet } from './static-files.js';

/**
 * The console's pages (SPEC §6). Guards: `visitor` (anyone; form posts need their CSRF token), `account`
 * (a signed-in user), `operator-session` (an operator's session). Every post of every guard is a form
 * checked for its CSRF token before the handler runs.
 */
const page = (method: Route['method'], path: string, guard: Route['guard'], handle: (ctx: AppContext) => unknown): Route => ({
  method,
  path,
  guard,
  handle: async (ctx) => {
    await handle(ctx);
  },
});

export const consoleRoutes: Route[] = [
  { method: 'GET', path: '/static/eastx.css', guard: 'public', handle: stylesheet },
  { method: 'GET', path: '/static/console.js', guard: 'public', handle: script },

  page('GET', '/', 'visitor', pub.home),
  page('GET', '/pricing', 'visitor', pub.pricing),
  page('GET', '/docs', 'visitor', pub.docs),
  page('GET', '/signup', 'visitor', (ctx) => auth.showSignup(ctx)),
  page('POST', '/signup', 'visitor', auth.signup),
  page('GET', '/login', 'visitor', (ctx) => auth.showLogin(ctx)),
  page('POST', '/login', 'visitor', auth.login),
  page('POST', '/logout', 'visitor', auth.logout),
  page('GET', '/admin/login', 'visitor', (ctx) => auth.showAdminLogin(ctx)),
  page('POST', '/admin/login', 'visitor', auth.adminLogin),

  page('GET', '/keys', 'account', (ctx) => keys.showKeys(ctx)),
  page('POST', '/keys', 'account', keys.createKey),
  page('POST', '/keys/:id', 'account', keys.updateKey),
  page('GET', '/keys/:id/revoke', 'account', keys.confirmRevoke),
  page('POST', '/keys/:id/revoke', 'account', keys.revokeKey),
  page('GET', '/recharge', 'account', (ctx) => recharge.showRecharge(ctx)),
  page('POST', '/recharge', 'account', recharge.redeem),
  page('GET', '/usage', 'account', usage.showUsage),
  page('GET', '/usage.csv', 'account', usage.usageCsv),

  page('GET', '/admin', 'operator-session', users.overview),
  page('GET', '/admin/users', 'operator-session', users.users),
  page('GET', '/admin/users/:id', 'operator-session', (ctx) => users.showUser(ctx)),
  page('POST', '/admin/users/:id/credit', 'operator-session', users.credit),
  page('POST', '/admin/users/:id/adjust', 'operator-session', users.adjust),
  page('GET', '/admin/channels', 'operator-session', (ctx) => catalog.showChannels(ctx)),
  page('POST', '/admin/channels', 'operator-session', catalog.createChannel),
  page('POST', '/admin/channels/:id/tokens', 'operator-session', catalog.addToken),
  page('POST', '/admin/tokens/:id', 'operator-session', catalog.updateToken),
  page('GET', '/admin/models', 'operator-session', catalog.showModels),
  page('GET', '/admin/models/edit', 'operator-session', (ctx) => catalog.editModel(ctx)),
  page('POST', '/admin/models', 'operator-session', catalog.saveModel),
  page('GET', '/admin/codes', 'operator-session', (ctx) => codes.showCodes(ctx)),
  page('POST', '/admin/codes', 'operator-session', codes.createCodes),
];
