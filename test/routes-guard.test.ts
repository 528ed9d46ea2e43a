import { request } from 'node:http';
import test from 'ava';
import type { Route } from '../src/http/router.js';
import { ROUTES } from '../src/routes.js';
import { type Bed, startBed } from './helpers/bed.js';
import { ConsoleClient } from './helpers/console-client.js';
import { newCustomer } from './helpers/customer.js';

// The attack matrix is generated from the route table: a route added tomorrow is attacked here too.
let bed: Bed;
let customerKey: string;
let userId: number;
let keyId: number;
let channelId: number;
let tokenId: number;
/** Cookie headers of real console sessions: a customer's, and an operator's (opened with the admin token). */
let customerSession: string;
let operatorSession: string;
const MODEL = 'guard/chat-1';
const sessionCookie = (client: ConsoleClient) => [...client.cookies].map(([k, v]) => `${k}=${v}`).join('; ');

test.before(async () => {
  bed = await startBed('routes_guard', { env: { METRICS_TOKEN: 'metrics-token-guard' } });
  const { admin, mock, url, env } = bed;
  channelId = (await admin.channel('guard-openai', 'openai', `${mock.url}/v1`)).id;
  tokenId = (await admin.token(channelId, 'tok-guard-secret', 4)).id;
  await admin.model(MODEL, { channel_id: channelId, upstream_model: 'mock-gpt', input_price_per_1m: 1, output_price_per_1m: 2 });
  ({ userId, keyId, apiKey: customerKey } = await newCustomer(admin, 'guard@example.com', '5', { rpm_limit: 100_000 }));
  const customer = new ConsoleClient(url);
  await customer.signUp('guard-console@example.com', 'guard-console-password');
  customerSession = sessionCookie(customer);
  const operator = new ConsoleClient(url);
  await operator.get('/admin/login');
  await operator.post('/admin/login', { token: env.ADMIN_TOKEN });
  operatorSession = sessionCookie(operator);
});

test.after.always(() => bed?.stop());

/** A concrete path of a route, with ids that exist, so a skipped guard would really act. */
function examplePath(route: Route): string {
  return route.path
    .replace(
      ':id',
      route.path.includes('/channels/')
        ? String(channelId)
        : route.path.includes('/tokens/')
          ? String(tokenId)
          : route.path.includes('/keys/')
            ? String(keyId)
            : String(userId),
    )
    .replace('*id', encodeURIComponent(MODEL))
    .replace('*rest', 'api/queues');
}

/** Console pages take forms; guards that carry sessions (src/console) check the CSRF token of every post. */
const CONSOLE_GUARDS = new Set<Route['guard']>(['visitor', 'account', 'operator-session']);
const isConsole = (route: Route) => CONSOLE_GUARDS.has(route.guard);

/** A form that would change something if posted with its CSRF token (these posts carry none). */
function formFor(route: Route): Record<string, string> {
  const p = route.path;
  if (p === '/signup' || p === '/login') return { email: 'attacker@example.com', password: 'attacker-password' };
  if (p === '/admin/login') return { token: bed.env.ADMIN_TOKEN };
  if (p === '/keys') return { name: 'attacker' };
  if (p === '/keys/:id') return { rpm_limit: '1', balance_cap_usd: '0' };
  if (p === '/recharge') return { code: 'EASTX-0000-0000-0000-0000' };
  if (p.endsWith('/credit') || p.endsWith('/adjust')) return { amount_usd: '1000', note: 'attack' };
  if (p === '/admin/codes') return { amount_usd: '1000', count: '1' };
  if (p === '/admin/tokens/:id') return { status: 'disabled', max_concurrency: '1' };
  if (p === '/admin/channels/:id/tokens') return { secret: 'attacker-secret', max_concurrency: '1' };
  if (p === '/admin/channels') return { name: 'evil', type: 'openai', base_url: 'http://127.0.0.1:1/v1' };
  if (p === '/admin/models')
    return {
      id: MODEL,
      display_name: 'x',
      owned_by: 'x',
      modality: 'chat',
      status: 'disabled',
      channel_id: String(channelId),
      upstream_model: 'x',
    };
  return {};
}

/** A body that would succeed (and change something) if the guard let it through. */
function bodyFor(route: Route): unknown {
  const p = route.path;
  if (isConsole(route)) return new URLSearchParams(formFor(route));
  if (p.endsWith('/credit') || p.endsWith('/adjust')) return { amount_usd: '1000', note: 'attack' };
  if (p.endsWith('/redemption-codes')) return { amount_usd: '1000', count: 1 };
  if (p.endsWith('/users')) return { email: 'attacker@example.com' };
  if (p.endsWith('/users/:id/keys')) return { name: 'attacker' };
  if (p.startsWith('/admin/api/keys')) return { rpm_limit: 1, disabled: true };
  if (p.startsWith('/admin/api/tokens')) return { status: 'disabled' };
  if (p.endsWith('/tokens')) return { secret: 'attacker-secret', max_concurrency: 1 };
  if (p.endsWith('/channels')) return { name: 'evil', type: 'openai', base_url: 'http://127.0.0.1:1/v1' };
  if (p.startsWith('/admin/api/models'))
    return { display_name: 'x', owned_by: 'x', modality: 'chat', status: 'disabled', channel_id: channelId, upstream_model: 'x' };
  if (p.includes('/chat/')) return { model: MODEL, messages: [{ role: 'user', content: 'hi' }] };
  if (p.includes('/embeddings')) return { model: MODEL, input: 'hi' };
  if (p.includes('/images/')) return { model: MODEL, prompt: 'hi' };
  return undefined;
}

/** Sends exactly this request target (no URL normalisation, unlike fetch). */
function raw(
  method: string,
  target: string,
  headers: Record<string, string>,
  body?: unknown,
): Promise<{ status: number; text: string; location?: string }> {
  const form = body instanceof URLSearchParams;
  const payload = body === undefined ? undefined : form ? body.toString() : JSON.stringify(body);
  const { port } = new URL(bed.url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path: target,
        headers: {
          ...headers,
          ...(payload !== undefined
            ? {
                'content-type': form ? 'application/x-www-form-urlencoded' : 'application/json',
                'content-length': String(Buffer.byteLength(payload)),
              }
            : {}),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text, location: res.headers.location }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** Other spellings of a canonical path (SPEC §1): every one is 404, whatever the credentials. */
function spellings(path: string): string[] {
  if (path === '/') return ['//', '/./', '/x/../', '/;x', '/%2F', `${bed.url}/`, 'http://evil.example/'];
  const [first, ...rest] = path.slice(1).split('/');
  const tail = rest.length ? `/${rest.join('/')}` : '';
  const cap = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
  return [
    path.toUpperCase(),
    `/${first.toUpperCase()}${tail}`,
    '/' + path.slice(1).split('/').map(cap).join('/'),
    `/${first}/${tail}`.replace(/\/\/$/, '//'),
    `//${first}${tail}`,
    `/%${first.charCodeAt(0).toString(16).toUpperCase()}${first.slice(1)}${tail}`,
    `/%${first.charCodeAt(0).toString(16)}${first.slice(1)}${tail}`,
    `/./${first}${tail}`,
    `/x/../${first}${tail}`,
    `/${first};jsessionid=1${tail}`,
    `${path};x`,
    `${path}/`,
    `${bed.url}${path}`,
    `http://evil.example${path}`,
  ].filter((s) => s !== path);
}

type Attempt = {
  method: string;
  target: string;
  headers: Record<string, string>;
  body?: unknown;
  label: string;
  expect?: 'login-redirect';
  /** the route answers errors in Anthropic's shape (SPEC §1b) */
  anthropic?: boolean;
};

/** A browser's Accept header: console pages answer it with pages and redirects instead of JSON. */
const BROWSER = { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' };

/** Which routes answer anyone (no credential attack applies); console GETs of the `visitor` guard are public pages. */
const isPublic = (route: Route, method: string) =>
  route.guard === 'public' || (route.guard === 'visitor' && (method === 'GET' || method === 'HEAD'));

/** The credential a route really takes: spellings must be 404 even with it. */
function rightHeaders(route: Route): Record<string, string> {
  if (route.guard === 'customer') return { authorization: `Bearer ${customerKey}` };
  if (route.guard === 'metrics') return { authorization: 'Bearer metrics-token-guard' };
  if (route.guard === 'account' || route.guard === 'visitor') return { cookie: customerSession };
  if (route.guard === 'operator-session') return { cookie: operatorSession };
  return { authorization: `Bearer ${bed.env.ADMIN_TOKEN}` };
}

function attempts(): Attempt[] {
  const list: Attempt[] = [];
  for (const route of ROUTES) {
    const path = examplePath(route);
    const methods = route.method === 'ALL' ? ['GET', 'POST'] : route.method === 'GET' ? ['GET', 'HEAD'] : [route.method];
    const wrongs: Array<[string, Record<string, string>]> = [
      ['no credentials', {}],
      ['wrong bearer', { authorization: 'Bearer wrong-token' }],
      ['unknown sk-eastx key', { authorization: 'Bearer sk-eastx-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }],
      ['customer key', { authorization: `Bearer ${customerKey}` }],
      ['admin token + NBSP', { authorization: `Bearer ${bed.env.ADMIN_TOKEN}\u00a0` }],
      ['customer key + NBSP', { authorization: `Bearer \u00a0${customerKey}` }],
      ['basic with wrong password', { authorization: `Basic ${Buffer.from('admin:nope').toString('base64')}` }],
      ['method override', { 'x-http-method-override': 'GET', 'x-method-override': 'GET' }],
      [
        'forged session cookie',
        {
          cookie:
            'eastx_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA; eastx_session.sig=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
        },
      ],
    ];
    if (route.guard === 'customer') wrongs.push(['admin token on /v1', { authorization: `Bearer ${bed.env.ADMIN_TOKEN}` }]);
    if (route.errors === 'anthropic') {
      // Anthropic-style routes also read x-api-key, under the same strict rules
      wrongs.push(['x-api-key: customer key + NBSP', { 'x-api-key': `${customerKey}\u00a0` }]);
      wrongs.push(['x-api-key: unknown sk-eastx key', { 'x-api-key': 'sk-eastx-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }]);
      wrongs.push(['x-api-key: admin token', { 'x-api-key': bed.env.ADMIN_TOKEN }]);
    }
    if (route.guard !== 'account' && route.guard !== 'visitor') wrongs.push(['customer console session', { cookie: customerSession }]);
    if (route.guard === 'customer' || route.guard === 'operator' || route.guard === 'metrics')
      wrongs.push(['operator console session', { cookie: operatorSession }]);
    for (const method of methods) {
      const body = method === 'GET' || method === 'HEAD' ? undefined : bodyFor(route);
      if (!isPublic(route, method)) {
        for (const [label, headers] of wrongs) {
          if (route.guard === 'customer' && label === 'customer key') continue; // the right credential there
          list.push({ method, target: path, headers, body, label: `${label}`, anthropic: route.errors === 'anthropic' });
        }
        // a console post with the right session but no CSRF token is refused too
        if (isConsole(route) && method === 'POST')
          list.push({ method, target: path, headers: rightHeaders(route), body, label: 'right session, no CSRF token' });
        // SPEC §6: a page that needs a session answers a browser without one with a redirect to /login, nothing else
        if (route.guard === 'account' || route.guard === 'operator-session' || (route.guard === 'operator-browser' && method === 'GET')) {
          list.push({ method, target: path, headers: BROWSER, body, label: 'browser without a session', expect: 'login-redirect' });
        }
      }
      // exact routing: any other spelling is 404 even with the right credential
      for (const target of spellings(path)) {
        list.push({ method, target, headers: {}, body, label: 'spelling, no credentials' });
        list.push({ method, target, headers: rightHeaders(route), body, label: 'spelling, right credentials' });
      }
    }
  }
  return list;
}

async function snapshot() {
  const [user, key, channels, models, usage, keys, users] = await Promise.all([
    bed.admin.getUser(userId),
    bed.admin.getKey(keyId),
    bed.admin.call('GET', '/admin/api/channels'),
    bed.admin.call('GET', '/admin/api/models'),
    bed.admin.usage(`user_id=${userId}`),
    bed.admin.call('GET', `/admin/api/users/${userId}/keys`),
    bed.admin.call('GET', '/admin/api/users'),
  ]);
  return { user, key, channels, models, usage, keys, users };
}

test('every route × wrong credentials × other spellings: only 401/403/404, nothing changed, no upstream call', async (t) => {
  const before = await snapshot();
  const upstreamCalls = bed.mock.requests.length;
  const all = attempts();
  t.true(all.length > 500, `${all.length} attempts`);
  const failures: string[] = [];
  for (let i = 0; i < all.length; i += 16) {
    const batch = all.slice(i, i + 16);
    const answers = await Promise.all(batch.map((a) => raw(a.method, a.target, a.headers, a.body)));
    answers.forEach((answer, j) => {
      const a = batch[j];
      const where = `${a.method} ${a.target} [${a.label}]`;
      if (a.expect === 'login-redirect') {
        if (answer.status !== 303 || !/^\/login(\?next=|$)/.test(answer.location ?? ''))
          failures.push(`${where} → ${answer.status} ${answer.location ?? ''}, expected 303 to /login`);
        return;
      }
      const spelled = a.label.startsWith('spelling');
      const allowed = spelled ? [404] : [401, 403, 404];
      if (!allowed.includes(answer.status)) failures.push(`${where} → ${answer.status} ${answer.text.slice(0, 120)}`);
      const shape = a.anthropic
        ? /^\{"type":"error","error":\{"type":"[a-z_]+","message":"[^"]*","code":"[a-z_]+"/
        : /^\{"error":\{"code":"[a-z_]+"/;
      if (a.method !== 'HEAD' && answer.status >= 400 && !shape.test(answer.text))
        failures.push(`${where} → not a SPEC error body: ${answer.text.slice(0, 80)}`);
    });
  }
  t.deepEqual(failures, []);
  t.deepEqual(await snapshot(), before, 'no balance, key, channel, token, model or ledger row changed');
  t.is(bed.mock.requests.length, upstreamCalls, 'the upstream saw no call');
});

/** A body each customer route would take (the chat model on every route: others answer wrong_endpoint). */
function customerBodyFor(route: Route): unknown {
  if (route.method === 'GET') return undefined;
  const messages = [{ role: 'user', content: 'hi' }];
  if (route.path === '/v1/messages') return { model: MODEL, max_tokens: 16, messages };
  if (route.path === '/v1/messages/count_tokens') return { model: MODEL, messages };
  if (route.path === '/v1/responses') return { model: MODEL, input: 'hi' };
  return bodyFor(route);
}

// serial: runs before the matrix above (ava runs serial tests first), whose snapshot lists every user
test.serial(
  'a key the web process holds as live and that was disabled since: every customer route answers the key’s 403 first, whatever the body',
  async (t) => {
    const { keyId: id, apiKey } = await newCustomer(bed.admin, 'guard-claim@example.com', '5', { rpm_limit: 100_000 });
    const auth = { authorization: `Bearer ${apiKey}` };
    const upstreamCalls = bed.mock.requests.length;
    const failures: string[] = [];
    let sent = 0;
    for (const route of ROUTES.filter((r) => r.guard === 'customer')) {
      const method = route.method === 'ALL' ? 'POST' : route.method;
      const bodies: Array<[string, unknown]> = [['valid body', customerBodyFor(route)]];
      if (method !== 'GET')
        bodies.push(
          ['malformed body', { model: 5, messages: 'x' }],
          ['unknown model', { ...(customerBodyFor(route) as object), model: 'no/such-model' }],
        );
      for (const [label, body] of bodies) {
        await bed.admin.call('PATCH', `/admin/api/keys/${id}`, { disabled: false });
        t.is((await raw('GET', '/v1/models', auth)).status, 200, 'the web process now holds the key as live');
        await bed.admin.call('PATCH', `/admin/api/keys/${id}`, { disabled: true });
        const answer = await raw(method, examplePath(route), auth, body);
        sent++;
        const code = answer.status === 403 ? /"code":"([a-z_]+)"/.exec(answer.text)?.[1] : undefined;
        if (code !== 'disabled') failures.push(`${method} ${route.path} [${label}] → ${answer.status} ${answer.text.slice(0, 120)}`);
      }
    }
    t.true(sent >= 20, `${sent} requests`);
    t.deepEqual(failures, []);
    t.is(bed.mock.requests.length, upstreamCalls, 'the upstream saw no call');
  },
);

test('the right credentials on the canonical path still work (the matrix is not vacuous)', async (t) => {
  t.is((await raw('GET', `/admin/api/users/${userId}`, { authorization: `Bearer ${bed.env.ADMIN_TOKEN}` })).status, 200);
  t.is((await raw('GET', '/v1/models', { authorization: `Bearer ${customerKey}` })).status, 200);
  t.is((await raw('GET', `/v1/models/${encodeURIComponent(MODEL)}`, { authorization: `Bearer ${customerKey}` })).status, 200);
  t.is(
    (await raw('GET', `/v1/models/${MODEL}`, { authorization: `Bearer ${customerKey}` })).status,
    200,
    'a raw / inside a model id is canonical too',
  );
  t.is((await raw('GET', '/metrics', { authorization: 'Bearer metrics-token-guard' })).status, 200);
  t.is((await raw('GET', '/admin/queues/api/queues', { authorization: `Bearer ${bed.env.ADMIN_TOKEN}` })).status, 200);
  t.is(
    (await raw('GET', '/v1/models', { authorization: `Bearer  ${customerKey} \t` })).status,
    200,
    'space and tab around the token are HTTP whitespace',
  );
  t.is((await raw('GET', '/v1/models', { authorization: `bearer ${customerKey}` })).status, 200, 'the scheme is case-insensitive');
  t.is((await raw('GET', '/keys', { ...BROWSER, cookie: customerSession })).status, 200, 'a console session opens its pages');
  t.is((await raw('GET', '/admin', { ...BROWSER, cookie: operatorSession })).status, 200);
  t.is((await raw('GET', '/admin/queues', { ...BROWSER, cookie: operatorSession })).status, 200, 'Bull Board behind the operator session');
});

test('a known path with another method is 405; OPTIONS is not answered for unauthenticated callers', async (t) => {
  const res = await raw('DELETE', '/v1/chat/completions', {});
  t.is(res.status, 405);
  t.is(JSON.parse(res.text).error.code, 'method_not_allowed');
  const options = await raw('OPTIONS', `/admin/api/users/${userId}`, {});
  t.true([404, 405].includes(options.status), `OPTIONS → ${options.status}`);
});
