import { request } from 'node:http';
import test from 'ava';
import { startMockUpstream, type MockUpstream } from '../src/mock/upstream.js';
import type { Route } from '../src/http/router.js';
import { ROUTES } from '../src/routes.js';
import { AdminClient } from './helpers/admin.js';
import { newCustomer } from './helpers/customer.js';
import { freshEnvironment } from './helpers/env.js';
import { startGateway, type Gateway } from './helpers/gateway.js';

// The attack matrix is generated from the route table: a route added tomorrow is attacked here too.
let mock: MockUpstream;
let gateway: Gateway;
let admin: AdminClient;
let url: string;
let adminToken: string;
let customerKey: string;
let userId: number;
let keyId: number;
let channelId: number;
let tokenId: number;
const MODEL = 'guard/chat-1';

test.before(async () => {
  mock = await startMockUpstream();
  const { env } = await freshEnvironment('routes_guard');
  adminToken = env.ADMIN_TOKEN;
  gateway = await startGateway({ ...env, METRICS_TOKEN: 'metrics-token-guard' });
  url = gateway.urls[0];
  admin = new AdminClient(url, adminToken);
  channelId = (await admin.channel('guard-openai', 'openai', `${mock.url}/v1`)).id;
  tokenId = (await admin.token(channelId, 'tok-guard-secret', 4)).id;
  await admin.model(MODEL, { channel_id: channelId, upstream_model: 'mock-gpt', input_price_per_1m: 1, output_price_per_1m: 2 });
  ({ userId, keyId, apiKey: customerKey } = await newCustomer(admin, 'guard@example.com', '5', { rpm_limit: 100_000 }));
});

test.after.always(async () => {
  await gateway?.stop();
  await mock?.close();
});

/** A concrete path of a route, with ids that exist, so a skipped guard would really act. */
function examplePath(route: Route): string {
  return route.path
    .replace(':id', route.path.includes('/channels/') ? String(channelId) : route.path.includes('/tokens/') ? String(tokenId) : route.path.includes('/keys/') ? String(keyId) : String(userId))
    .replace('*id', encodeURIComponent(MODEL))
    .replace('*rest', 'api/queues');
}

/** A body that would succeed (and change something) if the guard let it through. */
function bodyFor(route: Route): unknown {
  const p = route.path;
  if (p.endsWith('/credit') || p.endsWith('/adjust')) return { amount_usd: '1000', note: 'attack' };
  if (p.endsWith('/redemption-codes')) return { amount_usd: '1000', count: 1 };
  if (p.endsWith('/users')) return { email: 'attacker@example.com' };
  if (p.endsWith('/users/:id/keys')) return { name: 'attacker' };
  if (p.startsWith('/admin/api/keys')) return { rpm_limit: 1, disabled: true };
  if (p.startsWith('/admin/api/tokens')) return { status: 'disabled' };
  if (p.endsWith('/tokens')) return { secret: 'attacker-secret', max_concurrency: 1 };
  if (p.endsWith('/channels')) return { name: 'evil', type: 'openai', base_url: 'http://127.0.0.1:1/v1' };
  if (p.startsWith('/admin/api/models')) return { display_name: 'x', owned_by: 'x', modality: 'chat', status: 'disabled', channel_id: channelId, upstream_model: 'x' };
  if (p.includes('/chat/')) return { model: MODEL, messages: [{ role: 'user', content: 'hi' }] };
  if (p.includes('/embeddings')) return { model: MODEL, input: 'hi' };
  if (p.includes('/images/')) return { model: MODEL, prompt: 'hi' };
  return undefined;
}

/** Sends exactly this request target (no URL normalisation, unlike fetch). */
function raw(method: string, target: string, headers: Record<string, string>, body?: unknown): Promise<{ status: number; text: string }> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path: target, headers: { ...headers, ...(payload ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) } : {}) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** Other spellings of a canonical path (SPEC §1): every one is 404, whatever the credentials. */
function spellings(path: string): string[] {
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
    `${url}${path}`,
    `http://evil.example${path}`,
  ].filter((s) => s !== path);
}

type Attempt = { method: string; target: string; headers: Record<string, string>; body?: unknown; label: string };

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
      ['admin token + NBSP', { authorization: `Bearer ${adminToken}\u00a0` }],
      ['customer key + NBSP', { authorization: `Bearer \u00a0${customerKey}` }],
      ['basic with wrong password', { authorization: `Basic ${Buffer.from('admin:nope').toString('base64')}` }],
      ['method override', { 'x-http-method-override': 'GET', 'x-method-override': 'GET' }],
    ];
    if (route.guard === 'customer') wrongs.push(['admin token on /v1', { authorization: `Bearer ${adminToken}` }]);
    for (const method of methods) {
      const body = method === 'GET' || method === 'HEAD' ? undefined : bodyFor(route);
      if (route.guard !== 'public') {
        for (const [label, headers] of wrongs) {
          if (route.guard === 'customer' && label === 'customer key') continue; // the right credential there
          list.push({ method, target: path, headers, body, label: `${label}` });
        }
      }
      // exact routing: any other spelling is 404 even with the right credential
      const right = route.guard === 'customer' ? `Bearer ${customerKey}` : route.guard === 'metrics' ? 'Bearer metrics-token-guard' : `Bearer ${adminToken}`;
      for (const target of spellings(path)) {
        list.push({ method, target, headers: {}, body, label: 'spelling, no credentials' });
        list.push({ method, target, headers: { authorization: right }, body, label: 'spelling, right credentials' });
      }
    }
  }
  return list;
}

async function snapshot() {
  const [user, key, channels, models, usage, keys] = await Promise.all([
    admin.getUser(userId),
    admin.getKey(keyId),
    admin.call('GET', '/admin/api/channels'),
    admin.call('GET', '/admin/api/models'),
    admin.usage(`user_id=${userId}`),
    admin.call('GET', `/admin/api/users/${userId}/keys`),
  ]);
  return { user, key, channels, models, usage, keys };
}

test('every route × wrong credentials × other spellings: only 401/403/404, nothing changed, no upstream call', async (t) => {
  const before = await snapshot();
  const upstreamCalls = mock.requests.length;
  const all = attempts();
  t.true(all.length > 500, `${all.length} attempts`);
  const failures: string[] = [];
  for (let i = 0; i < all.length; i += 16) {
    const batch = all.slice(i, i + 16);
    const answers = await Promise.all(batch.map((a) => raw(a.method, a.target, a.headers, a.body)));
    answers.forEach((answer, j) => {
      const a = batch[j];
      const spelled = a.label.startsWith('spelling');
      const allowed = spelled ? [404] : [401, 403, 404];
      if (!allowed.includes(answer.status)) failures.push(`${a.method} ${a.target} [${a.label}] → ${answer.status} ${answer.text.slice(0, 120)}`);
      if (a.method !== 'HEAD' && answer.status >= 400 && !/^\{"error":\{"code":"[a-z_]+"/.test(answer.text)) failures.push(`${a.method} ${a.target} [${a.label}] → not a SPEC error body: ${answer.text.slice(0, 80)}`);
    });
  }
  t.deepEqual(failures, []);
  t.deepEqual(await snapshot(), before, 'no balance, key, channel, token, model or ledger row changed');
  t.is(mock.requests.length, upstreamCalls, 'the upstream saw no call');
});

test('the right credentials on the canonical path still work (the matrix is not vacuous)', async (t) => {
  t.is((await raw('GET', `/admin/api/users/${userId}`, { authorization: `Bearer ${adminToken}` })).status, 200);
  t.is((await raw('GET', '/v1/models', { authorization: `Bearer ${customerKey}` })).status, 200);
  t.is((await raw('GET', `/v1/models/${encodeURIComponent(MODEL)}`, { authorization: `Bearer ${customerKey}` })).status, 200);
  t.is((await raw('GET', `/v1/models/${MODEL}`, { authorization: `Bearer ${customerKey}` })).status, 200, 'a raw / inside a model id is canonical too');
  t.is((await raw('GET', '/metrics', { authorization: 'Bearer metrics-token-guard' })).status, 200);
  t.is((await raw('GET', '/admin/queues/api/queues', { authorization: `Bearer ${adminToken}` })).status, 200);
  t.is((await raw('GET', '/v1/models', { authorization: `Bearer  ${customerKey} \t` })).status, 200, 'space and tab around the token are HTTP whitespace');
  t.is((await raw('GET', '/v1/models', { authorization: `bearer ${customerKey}` })).status, 200, 'the scheme is case-insensitive');
});

test('a known path with another method is 405; OPTIONS is not answered for unauthenticated callers', async (t) => {
  const res = await raw('DELETE', '/v1/chat/completions', {});
  t.is(res.status, 405);
  t.is(JSON.parse(res.text).error.code, 'method_not_allowed');
  const options = await raw('OPTIONS', `/admin/api/users/${userId}`, {});
  t.true([404, 405].includes(options.status), `OPTIONS → ${options.status}`);
});
