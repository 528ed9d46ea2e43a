import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { hashApiKey } from '../src/accounts/keys.js';
import { verifyPassword } from '../src/accounts/passwords.js';
import { createApp } from '../src/app.js';
import { redeemCode } from '../src/billing/codes.js';
import { ApiError } from '../src/http/errors.js';
import { createWebServices, type WebServices } from '../src/services.js';
import { freshEnvironment } from './helpers/env.js';
import { nano } from './helpers/money.js';

let svc: WebServices;
let server: Server;
let offServer: Server;
let base: string;
let offBase: string;
let adminToken: string;

async function listen(app: ReturnType<typeof createApp>): Promise<[Server, string]> {
  const s = app.listen(0, '127.0.0.1');
  await once(s, 'listening');
  return [s, `http://127.0.0.1:${(s.address() as AddressInfo).port}`];
}

test.before(async () => {
  const { config } = await freshEnvironment('admin_api');
  adminToken = config.adminToken!;
  svc = await createWebServices(config);
  [server, base] = await listen(createApp(svc));
  // The same services with ADMIN_TOKEN unset: the admin API is off.
  [offServer, offBase] = await listen(createApp({ ...svc, config: { ...svc.config, adminToken: undefined } }));
});

test.after.always(async () => {
  server?.close();
  offServer?.close();
  await svc?.close();
});

interface Answer {
  status: number;
  text: string;
  json: any;
}

async function call(
  method: string,
  path: string,
  body?: unknown,
  options: { token?: string | null; raw?: string; url?: string } = {},
): Promise<Answer> {
  const headers: Record<string, string> = {};
  const token = options.token === undefined ? adminToken : options.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let payload: string | undefined = options.raw;
  if (body !== undefined) payload = JSON.stringify(body);
  if (payload !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${options.url ?? base}${path}`, { method, headers, body: payload });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json };
}

/** Asserts an error answer of SPEC §2 and returns its message. */
function error(t: import('ava').ExecutionContext, answer: Answer, status: number, code: string): string {
  t.is(answer.status, status, answer.text);
  t.is(answer.json?.error?.code, code, answer.text);
  t.is(typeof answer.json?.error?.message, 'string');
  t.is(typeof answer.json?.error?.type, 'string');
  return answer.json?.error?.message ?? '';
}

let unique = 0;
const email = (what: string) => `${what}-${++unique}-${Date.now()}@example.test`;

async function newChannel(name = 'main') {
  const res = await call('POST', '/admin/api/channels', { name, type: 'openai', base_url: 'http://127.0.0.1:9/v1' });
  return res.json as { id: number };
}

async function newUser() {
  const res = await call('POST', '/admin/api/users', { email: email('user') });
  return res.json as { id: number; email: string };
}

const modelBody = (channelId: number, extra: Record<string, unknown> = {}) => ({
  display_name: 'Smoke chat 1',
  owned_by: 'smoke',
  modality: 'chat',
  status: 'active',
  channel_id: channelId,
  upstream_model: 'smoke-upstream-model',
  input_price_per_1m: 1.5,
  output_price_per_1m: 6,
  max_output_tokens: 64,
  vision: false,
  tools: true,
  ...extra,
});

// ---- auth

test('no Authorization or another scheme → 401 missing_key; a wrong token → 401 invalid_key (authentication_error)', async (t) => {
  for (const [method, path, body] of [
    ['GET', '/admin/api/usage'],
    ['POST', '/admin/api/users', { email: email('intruder') }],
    ['GET', '/admin/api/users/1'],
  ] as const) {
    const none = await call(method, path, body, { token: null });
    error(t, none, 401, 'missing_key');
    t.is(none.json.error.type, 'authentication_error');
    error(t, await call(method, path, body, { token: `${adminToken}x` }), 401, 'invalid_key');
    error(t, await call(method, path, body, { token: 'short' }), 401, 'invalid_key');
  }
  const basic = await fetch(`${base}/admin/api/usage`, {
    headers: { authorization: `Basic ${Buffer.from(`admin:${adminToken}`).toString('base64')}` },
  });
  t.is(basic.status, 401, 'the admin API takes Bearer only');
  t.is(((await basic.json()) as { error: { code: string } }).error.code, 'missing_key');
  // Nothing was created by the refused POSTs.
  const users = await svc.db.selectFrom('users').select('email').where('email', 'like', 'intruder-%').execute();
  t.deepEqual(users, []);
});

test('without ADMIN_TOKEN the admin API answers 404 not_found for everything', async (t) => {
  for (const [method, path] of [
    ['GET', '/admin/api/usage'],
    ['POST', '/admin/api/users'],
    ['GET', '/admin/api/channels'],
  ]) {
    error(t, await call(method, path, undefined, { url: offBase, token: null }), 404, 'not_found');
    error(t, await call(method, path, undefined, { url: offBase, token: adminToken }), 404, 'not_found');
  }
});

test('unknown admin route → 404 not_found, wrong method → 405', async (t) => {
  error(t, await call('GET', '/admin/api/nothing-here'), 404, 'not_found');
  error(t, await call('DELETE', '/admin/api/users'), 405, 'method_not_allowed');
});

// ---- channels and tokens

test('POST /admin/api/channels creates a channel and bumps the catalog version', async (t) => {
  const before = await svc.redis.get(svc.keys.catalogVersion());
  const res = await call('POST', '/admin/api/channels', { name: 'openai-main', type: 'openai', base_url: 'https://api.openai.com/v1' });
  t.is(res.status, 201, res.text);
  t.like(res.json, { name: 'openai-main', type: 'openai', base_url: 'https://api.openai.com/v1' });
  t.is(typeof res.json.id, 'number');
  t.false(Number.isNaN(Date.parse(res.json.created_at)));
  t.not(await svc.redis.get(svc.keys.catalogVersion()), before);
});

test('POST /admin/api/channels validation names the field', async (t) => {
  const good = { name: 'x', type: 'anthropic', base_url: 'https://api.anthropic.com' };
  const cases: [unknown, string][] = [
    [{ ...good, name: undefined }, 'name'],
    [{ ...good, name: 5 }, 'name'],
    [{ ...good, type: 'azure' }, 'type'],
    [{ ...good, type: undefined }, 'type'],
    [{ ...good, base_url: 'ftp://example.com' }, 'base_url'],
    [{ ...good, base_url: 'not a url' }, 'base_url'],
    [[1, 2], 'body'],
  ];
  for (const [body, field] of cases) {
    const message = error(t, await call('POST', '/admin/api/channels', body), 400, 'bad_request');
    t.true(message.startsWith(`${field}:`), `${JSON.stringify(body)} → ${message}`);
  }
  t.regex(error(t, await call('POST', '/admin/api/channels', undefined, { raw: '{"name":' }), 400, 'bad_request'), /JSON/);
  t.regex(error(t, await call('POST', '/admin/api/channels', undefined, { raw: '' }), 400, 'bad_request'), /body/);
});

test('upstream tokens: created sealed, never echoed, listed without secret, patched', async (t) => {
  const channel = await newChannel('tokens');
  const secret = 'sk-upstream-very-secret-value-1234';
  const created = await call('POST', `/admin/api/channels/${channel.id}/tokens`, { secret, max_concurrency: 3, name: 'a' });
  t.is(created.status, 201, created.text);
  t.like(created.json, { channel_id: channel.id, name: 'a', max_concurrency: 3, status: 'active', secret_hint: '…1234' });
  t.false(created.text.includes(secret));
  const defaults = await call('POST', `/admin/api/channels/${channel.id}/tokens`, { secret: 'another-secret-abcd' });
  t.like(defaults.json, { max_concurrency: 4, name: '', status: 'active' });

  const stored = await svc.db.selectFrom('upstream_tokens').selectAll().where('id', '=', created.json.id).executeTakeFirstOrThrow();
  t.false(stored.secret_enc.includes(secret));
  t.is(svc.secrets.open(stored.secret_enc), secret);

  const list = await call('GET', '/admin/api/channels');
  t.is(list.status, 200);
  t.false(list.text.includes(secret));
  const listed = list.json.data.find((c: { id: number }) => c.id === channel.id);
  t.deepEqual(
    listed.tokens.map((tk: { id: number }) => tk.id),
    [created.json.id, defaults.json.id],
  );

  const before = await svc.redis.get(svc.keys.catalogVersion());
  t.is(
    error(t, await call('PATCH', `/admin/api/tokens/${created.json.id}`, { state: 'disabled' }), 400, 'bad_request'),
    'state: unknown field',
  );
  const disabled = await call('PATCH', `/admin/api/tokens/${created.json.id}`, { status: 'disabled', max_concurrency: 8 });
  t.is(disabled.status, 200, disabled.text);
  t.like(disabled.json, { id: created.json.id, status: 'disabled', max_concurrency: 8 });
  t.false(disabled.text.includes(secret));
  t.not(await svc.redis.get(svc.keys.catalogVersion()), before);
  const catalog = await svc.catalog.current();
  t.is(catalog.tokensByChannel.get(channel.id)?.find((tk) => tk.id === created.json.id)?.status, 'disabled');
  const active = await call('PATCH', `/admin/api/tokens/${created.json.id}`, { status: 'active' });
  t.like(active.json, { status: 'active', disabled_reason: null, max_concurrency: 8 });
});

test('upstream tokens: validation and missing rows', async (t) => {
  const channel = await newChannel('tokens-bad');
  t.regex(error(t, await call('POST', `/admin/api/channels/${channel.id}/tokens`, {}), 400, 'bad_request'), /^secret:/);
  t.regex(
    error(t, await call('POST', `/admin/api/channels/${channel.id}/tokens`, { secret: 's', max_concurrency: 0 }), 400, 'bad_request'),
    /^max_concurrency:/,
  );
  t.regex(
    error(t, await call('POST', `/admin/api/channels/${channel.id}/tokens`, { secret: 's', max_concurrency: 1.5 }), 400, 'bad_request'),
    /^max_concurrency:/,
  );
  t.regex(
    error(t, await call('POST', `/admin/api/channels/${channel.id}/tokens`, { secret: 's', max_concurrency: '2' }), 400, 'bad_request'),
    /^max_concurrency:/,
  );
  error(t, await call('POST', '/admin/api/channels/999999/tokens', { secret: 's' }), 404, 'not_found');
  error(t, await call('POST', '/admin/api/channels/abc/tokens', { secret: 's' }), 404, 'not_found');
  error(t, await call('PATCH', '/admin/api/tokens/999999', { status: 'disabled' }), 404, 'not_found');
  error(t, await call('PATCH', '/admin/api/tokens/x1', { status: 'disabled' }), 404, 'not_found');
  const token = await call('POST', `/admin/api/channels/${channel.id}/tokens`, { secret: 'abc' });
  t.regex(error(t, await call('PATCH', `/admin/api/tokens/${token.json.id}`, { status: 'paused' }), 400, 'bad_request'), /^status:/);
});

// ---- models

test('PUT /admin/api/models/:id upserts ids with "/" and "." given as %2F, prices as decimal strings', async (t) => {
  const channel = await newChannel('models');
  const id = 'smoke/chat-1.5';
  const created = await call('PUT', `/admin/api/models/${encodeURIComponent(id)}`, modelBody(channel.id));
  t.is(created.status, 200, created.text);
  t.like(created.json, {
    id,
    display_name: 'Smoke chat 1',
    modality: 'chat',
    status: 'active',
    channel_id: channel.id,
    upstream_model: 'smoke-upstream-model',
    input_price_per_1m: '1.5',
    output_price_per_1m: '6',
    price_per_image: '0',
    max_output_tokens: 64,
    vision: false,
    tools: true,
  });
  t.deepEqual(created.json.sizes, ['1024x1024']);

  const updated = await call(
    'PUT',
    `/admin/api/models/${encodeURIComponent(id)}`,
    modelBody(channel.id, { display_name: 'Renamed', input_price_per_1m: '0.000001', status: 'coming_soon' }),
  );
  t.is(updated.status, 200, updated.text);
  t.like(updated.json, { id, display_name: 'Renamed', input_price_per_1m: '0.000001', status: 'coming_soon', max_output_tokens: 64 });
  const rows = await svc.db.selectFrom('models').select(['id', 'input_micro']).where('id', '=', id).execute();
  t.is(rows.length, 1);
  t.is(BigInt(rows[0].input_micro), 1n);

  const image = await call('PUT', `/admin/api/models/${encodeURIComponent('qwen/wanx2.1-t2i-turbo')}`, {
    ...modelBody(channel.id),
    modality: 'image',
    price_per_image: '0.04',
    sizes: ['1024x1024', '720x1280'],
  });
  t.is(image.status, 200, image.text);
  t.like(image.json, { id: 'qwen/wanx2.1-t2i-turbo', price_per_image: '0.04', modality: 'image' });
  t.deepEqual(image.json.sizes, ['1024x1024', '720x1280']);

  const list = await call('GET', '/admin/api/models');
  t.true(list.json.data.some((m: { id: string }) => m.id === id));

  // Every process sees the change: the catalog reloads at the new version.
  const catalog = await svc.catalog.current();
  t.like(catalog.models.get(id), { displayName: 'Renamed', status: 'coming_soon' });
  t.is(catalog.models.get('qwen/wanx2.1-t2i-turbo')?.prices.imageNano, 40_000_000n);
});

test('PUT /admin/api/models/:id validation names the field', async (t) => {
  const channel = await newChannel('models-bad');
  const put = (body: unknown, id = 'bad/model') => call('PUT', `/admin/api/models/${encodeURIComponent(id)}`, body);
  const cases: [Record<string, unknown>, string][] = [
    [{ channel_id: 999999 }, 'channel_id'],
    [{ channel_id: 'x' }, 'channel_id'],
    [{ channel_id: undefined }, 'channel_id'],
    [{ modality: 'audio' }, 'modality'],
    [{ status: 'beta' }, 'status'],
    [{ display_name: undefined }, 'display_name'],
    [{ upstream_model: '' }, 'upstream_model'],
    [{ input_price_per_1m: -1 }, 'input_price_per_1m'],
    [{ input_price_per_1m: '0.0000001' }, 'input_price_per_1m'],
    [{ output_price_per_1m: 'cheap' }, 'output_price_per_1m'],
    [{ price_per_image: '0.0000000001' }, 'price_per_image'],
    [{ price_per_image: '-0.04' }, 'price_per_image'],
    [{ max_output_tokens: 0 }, 'max_output_tokens'],
    [{ vision: 'yes' }, 'vision'],
    [{ sizes: ['big'] }, 'sizes.0'],
    [{ sizes: [] }, 'sizes'],
    [{ modality: 'image', sizes: ['512x512'] }, 'sizes'],
  ];
  for (const [change, field] of cases) {
    const message = error(t, await put(modelBody(channel.id, change)), 400, 'bad_request');
    t.true(message.startsWith(`${field}:`), `${JSON.stringify(change)} → ${message}`);
  }
  t.regex(error(t, await put(modelBody(channel.id), 'has space'), 400, 'bad_request'), /model id/);
  const none = await svc.db.selectFrom('models').select('id').where('id', '=', 'bad/model').execute();
  t.deepEqual(none, []);
});

// ---- users, credit, adjust, usage

test('PUT /admin/api/models/:id with routes: trying order, states, a GET answer put back as is, one route in the old form', async (t) => {
  const a = await newChannel('routes-a');
  const b = await newChannel('routes-b');
  await call('POST', `/admin/api/channels/${a.id}/tokens`, { secret: 'sk-routes-a-0001' });
  const id = 'routes/multi';
  const put = await call('PUT', `/admin/api/models/${encodeURIComponent(id)}`, {
    ...modelBody(a.id),
    channel_id: undefined,
    upstream_model: undefined,
    routes: [
      { channel_id: a.id, upstream_model: 'up-a' },
      { channel_id: b.id, upstream_model: 'up-b', priority: 7, weight: 0 },
      { channel_id: a.id, upstream_model: 'up-a2', weight: 5 },
    ],
  });
  t.is(put.status, 200, put.text);
  t.like(put.json, { channel_id: b.id, upstream_model: 'up-b' });
  t.deepEqual(
    put.json.routes.map((r: any) => [r.channel_id, r.upstream_model, r.priority, r.weight, r.state]),
    [
      [b.id, 'up-b', 7, 0, 'disabled'],
      [a.id, 'up-a2', 0, 5, 'healthy'],
      [a.id, 'up-a', 0, 1, 'healthy'],
    ],
  );
  t.deepEqual(Object.keys(put.json.routes[0]).sort(), [
    'channel_id',
    'cooling_until',
    'failures_in_row',
    'last_error',
    'last_error_at',
    'priority',
    'state',
    'unhealthy_since',
    'upstream_model',
    'weight',
  ]);
  const listed = (await call('GET', '/admin/api/models')).json.data.find((m: any) => m.id === id);
  t.deepEqual(listed, put.json);
  const again = await call('PUT', `/admin/api/models/${encodeURIComponent(id)}`, listed);
  t.is(again.status, 200, `a model read back is accepted as it is: ${again.text}`);
  t.deepEqual(again.json.routes, put.json.routes);
  const catalog = await svc.catalog.current();
  t.deepEqual(
    catalog.models.get(id)?.routes.map((r) => r.upstreamModel),
    ['up-b', 'up-a2', 'up-a'],
  );

  const single = await call('PUT', `/admin/api/models/${encodeURIComponent(id)}`, modelBody(a.id));
  t.is(single.status, 200);
  t.deepEqual(
    single.json.routes.map((r: any) => [r.channel_id, r.upstream_model, r.priority, r.weight]),
    [[a.id, 'smoke-upstream-model', 0, 1]],
    'channel_id + upstream_model: one route',
  );
});

test('PUT /admin/api/models/:id routes validation names the field', async (t) => {
  const channel = await newChannel('routes-bad');
  const put = (body: unknown) => call('PUT', `/admin/api/models/${encodeURIComponent('routes/bad')}`, body);
  const route = { channel_id: channel.id, upstream_model: 'u' };
  const noPair = { channel_id: undefined, upstream_model: undefined };
  const cases: [Record<string, unknown>, string][] = [
    [{ ...noPair, routes: [] }, 'routes'],
    [{ ...noPair, routes: 'x' }, 'routes'],
    [{ ...noPair, routes: [route, route] }, 'routes.1'],
    [{ ...noPair, routes: [route, { ...route, channel_id: 999999 }] }, 'routes.1.channel_id'],
    [{ ...noPair, routes: [{ ...route, upstream_model: '' }] }, 'routes.0.upstream_model'],
    [{ ...noPair, routes: [{ ...route, weight: -1 }] }, 'routes.0.weight'],
    [{ ...noPair, routes: [{ ...route, priority: 1.5 }] }, 'routes.0.priority'],
    [{ ...noPair, routes: [7] }, 'routes.0'],
    [{ ...noPair, routes: Array.from({ length: 17 }, (_, i) => ({ ...route, upstream_model: `u${i}` })) }, 'routes'],
    [{ routes: [route], upstream_model: 'other' }, 'channel_id'],
    [{ upstream_model: undefined }, 'upstream_model'],
  ];
  for (const [change, field] of cases) {
    const message = error(t, await put(modelBody(channel.id, change)), 400, 'bad_request');
    t.true(message.startsWith(`${field}:`), `${JSON.stringify(change).slice(0, 80)} → ${message}`);
  }
  const none = await svc.db.selectFrom('model_routes').select('id').where('model_id', '=', 'routes/bad').execute();
  t.deepEqual(none, []);
});

test('users: create (password hashed with scrypt), duplicate email, get, missing', async (t) => {
  const address = email('Alice');
  const created = await call('POST', '/admin/api/users', { email: address, password: 'correct horse battery' });
  t.is(created.status, 201, created.text);
  t.like(created.json, { email: address.toLowerCase(), balance_usd: '0' });
  t.is(typeof created.json.id, 'number');
  t.false(created.text.includes('correct horse'));
  const row = await svc.db.selectFrom('users').select('password_hash').where('id', '=', created.json.id).executeTakeFirstOrThrow();
  t.regex(row.password_hash!, /^scrypt\$/);
  t.true(await verifyPassword('correct horse battery', row.password_hash));
  t.false(await verifyPassword('wrong horse battery', row.password_hash));

  t.regex(error(t, await call('POST', '/admin/api/users', { email: address }), 400, 'bad_request'), /^email:.*exists/);
  t.regex(error(t, await call('POST', '/admin/api/users', { email: address.toUpperCase() }), 400, 'bad_request'), /exists/);
  t.regex(error(t, await call('POST', '/admin/api/users', { email: 'not-an-email' }), 400, 'bad_request'), /^email:/);
  t.regex(error(t, await call('POST', '/admin/api/users', {}), 400, 'bad_request'), /^email:/);
  t.regex(error(t, await call('POST', '/admin/api/users', { email: email('p'), password: 'short' }), 400, 'bad_request'), /^password:/);

  const got = await call('GET', `/admin/api/users/${created.json.id}`);
  t.is(got.status, 200);
  t.like(got.json, { id: created.json.id, email: address.toLowerCase(), balance_usd: '0', held_usd: '0' });
  t.false(Number.isNaN(Date.parse(got.json.created_at)));
  t.false('password_hash' in got.json);
  error(t, await call('GET', '/admin/api/users/999999'), 404, 'not_found');
  error(t, await call('GET', '/admin/api/users/abc'), 404, 'not_found');
  error(t, await call('GET', '/admin/api/users/1.5'), 404, 'not_found');
  // an id has one spelling: a leading zero, a sign or a space names no row
  for (const spelling of [`0${created.json.id}`, `+${created.json.id}`, `%20${created.json.id}`])
    error(t, await call('GET', `/admin/api/users/${spelling}`), 404, 'not_found');
});

test('credit, adjust and usage: ledger rows newest first, signed decimal strings, sum = balance', async (t) => {
  const user = await newUser();
  const credit = await call('POST', `/admin/api/users/${user.id}/credit`, { amount_usd: '1', note: 'welcome' });
  t.is(credit.status, 200, credit.text);
  t.deepEqual(credit.json, { balance_usd: '1' });
  t.deepEqual((await call('POST', `/admin/api/users/${user.id}/credit`, { amount_usd: 0.25 })).json, { balance_usd: '1.25' });
  const adjusted = await call('POST', `/admin/api/users/${user.id}/adjust`, { amount_usd: '-0.0000135', note: 'refund correction' });
  t.is(adjusted.status, 200, adjusted.text);
  t.deepEqual(adjusted.json, { balance_usd: '1.2499865' });

  const usage = await call('GET', `/admin/api/usage?user_id=${user.id}`);
  t.is(usage.status, 200, usage.text);
  const rows = usage.json.data as Record<string, unknown>[];
  t.deepEqual(
    rows.map((r) => [r.kind, r.amount_usd, r.note]),
    [
      ['adjustment', '-0.0000135', 'refund correction'],
      ['credit', '0.25', null],
      ['credit', '1', 'welcome'],
    ],
  );
  for (const row of rows) {
    t.like(row, {
      user_id: user.id,
      request_id: null,
      key_id: null,
      model: null,
      prompt_tokens: 0,
      completion_tokens: 0,
      images: 0,
      estimated: false,
    });
    t.is(typeof row.id, 'number');
    t.false(Number.isNaN(Date.parse(row.created_at as string)));
  }
  const sumNano = rows.reduce((sum, r) => sum + nano(String(r.amount_usd)), 0n);
  const userNow = await call('GET', `/admin/api/users/${user.id}`);
  t.is(nano(String(userNow.json.balance_usd)), sumNano);

  t.is((await call('GET', `/admin/api/usage?user_id=${user.id}&limit=1`)).json.data.length, 1);
  t.deepEqual((await call('GET', `/admin/api/usage?user_id=${user.id}&since=2999-01-01`)).json.data, []);
  t.is((await call('GET', `/admin/api/usage?user_id=${user.id}&since=2000-01-01T00:00:00Z`)).json.data.length, 3);
  // An unencoded "+08:00" offset arrives as a space; it still reads as the offset.
  t.is((await call('GET', `/admin/api/usage?user_id=${user.id}&since=2000-01-01T08:00:00+08:00`)).json.data.length, 3);
  const older = await call('GET', `/admin/api/usage?user_id=${user.id}&before_id=${rows[0].id}`);
  t.deepEqual(
    older.json.data.map((r: { id: number }) => r.id),
    [rows[1].id, rows[2].id],
  );
});

test('credit and adjust validation', async (t) => {
  const user = await newUser();
  for (const amount of [0, -1, '-0.5', 'ten', '1.0000000001', null, true]) {
    t.regex(
      error(t, await call('POST', `/admin/api/users/${user.id}/credit`, { amount_usd: amount }), 400, 'bad_request'),
      /^amount_usd:/,
      String(amount),
    );
  }
  t.regex(error(t, await call('POST', `/admin/api/users/${user.id}/credit`, {}), 400, 'bad_request'), /^amount_usd:/);
  error(t, await call('POST', '/admin/api/users/999999/credit', { amount_usd: 1 }), 404, 'not_found');
  error(t, await call('POST', '/admin/api/users/zz/credit', { amount_usd: 1 }), 404, 'not_found');

  await call('POST', `/admin/api/users/${user.id}/credit`, { amount_usd: '0.5' });
  t.regex(
    error(t, await call('POST', `/admin/api/users/${user.id}/adjust`, { amount_usd: '-0.6', note: 'too much' }), 400, 'bad_request'),
    /^amount_usd:/,
  );
  t.regex(
    error(t, await call('POST', `/admin/api/users/${user.id}/adjust`, { amount_usd: 0, note: 'zero' }), 400, 'bad_request'),
    /^amount_usd:/,
  );
  t.regex(error(t, await call('POST', `/admin/api/users/${user.id}/adjust`, { amount_usd: 1 }), 400, 'bad_request'), /^note:/);
  error(t, await call('POST', '/admin/api/users/999999/adjust', { amount_usd: -1, note: 'x' }), 404, 'not_found');
  t.deepEqual((await call('POST', `/admin/api/users/${user.id}/adjust`, { amount_usd: '-0.5', note: 'to zero' })).json, {
    balance_usd: '0',
  });
  const ledger = await call('GET', `/admin/api/usage?user_id=${user.id}`);
  t.deepEqual(
    ledger.json.data.map((r: { amount_usd: string }) => r.amount_usd),
    ['-0.5', '0.5'],
  );
});

test('a balance holds at most $1e9: a credit or a redemption past it is 400 and moves nothing', async (t) => {
  const user = await newUser();
  const credit = (amount: string) => call('POST', `/admin/api/users/${user.id}/credit`, { amount_usd: amount });
  t.deepEqual((await credit('999999999.5')).json, { balance_usd: '999999999.5' });
  // up to the ceiling exactly, then not one nano-dollar more
  t.deepEqual((await credit('0.499999999')).json, { balance_usd: '999999999.999999999' });
  t.deepEqual((await credit('0.000000001')).json, { balance_usd: '1000000000' });
  t.regex(error(t, await credit('0.000000001'), 400, 'bad_request'), /^amount_usd: the balance would exceed .*1000000000 USD/);
  t.regex(error(t, await credit('1000000000'), 400, 'bad_request'), /^amount_usd:/, 'a sum past BIGINT is refused too');
  const [code] = (await call('POST', '/admin/api/redemption-codes', { amount_usd: '1', count: 1 })).json.codes as string[];
  await t.throwsAsync(redeemCode(svc.db, user.id, code), { instanceOf: ApiError, message: /^code: the balance would exceed/ });
  // the refusal rolled back the claim: the code is still good for someone else
  const other = await newUser();
  t.is((await redeemCode(svc.db, other.id, code)).balanceNano, 1_000_000_000n);
  const rows = (await call('GET', `/admin/api/usage?user_id=${user.id}`)).json.data as { amount_usd: string }[];
  t.deepEqual(
    rows.map((r) => r.amount_usd),
    ['0.000000001', '0.499999999', '999999999.5'],
  );
  t.is(
    rows.reduce((sum, r) => sum + nano(r.amount_usd), 0n),
    nano((await call('GET', `/admin/api/users/${user.id}`)).json.balance_usd),
  );
});

test('GET /admin/api/usage: bad query values → 400 naming the parameter', async (t) => {
  for (const [query, name] of [
    ['user_id=abc', 'user_id'],
    ['user_id=1&user_id=2', 'user_id'],
    ['key_id=-1', 'key_id'],
    ['since=yesterday', 'since'],
    ['since=2026-02-30', 'since'],
    ['limit=0', 'limit'],
    ['limit=1001', 'limit'],
    ['before_id=x', 'before_id'],
  ]) {
    t.regex(error(t, await call('GET', `/admin/api/usage?${query}`), 400, 'bad_request'), new RegExp(`^${name}:`), query);
  }
});

// ---- keys

test('keys: created once with the full key, GET never shows it, PATCH and DELETE reach every process', async (t) => {
  const user = await newUser();
  const created = await call('POST', `/admin/api/users/${user.id}/keys`, {
    name: 'ci',
    rpm_limit: 100,
    balance_cap_usd: '2.5',
    expires_at: '2999-01-01T00:00:00Z',
  });
  t.is(created.status, 201, created.text);
  const key = created.json.key as string;
  t.regex(key, /^sk-eastx-.{40,}$/);
  t.like(created.json, {
    user_id: user.id,
    name: 'ci',
    rpm_limit: 100,
    balance_cap_usd: '2.5',
    spent_usd: '0',
    status: 'active',
    expires_at: '2999-01-01T00:00:00.000Z',
  });
  t.is(created.json.prefix, key.slice(0, 13));
  t.is(typeof created.json.id, 'number');
  const secretPart = key.slice('sk-eastx-'.length);
  const hash = hashApiKey(key);

  const got = await call('GET', `/admin/api/keys/${created.json.id}`);
  t.is(got.status, 200);
  t.false(got.text.includes(secretPart));
  t.false(got.text.includes(hash));
  t.false('key' in got.json);
  t.deepEqual(Object.keys(got.json).sort(), [
    'allowed_models',
    'balance_cap_usd',
    'created_at',
    'expires_at',
    'held_usd',
    'id',
    'last_used_at',
    'max_concurrent_requests',
    'name',
    'prefix',
    'rpm_limit',
    'spent_usd',
    'status',
    'user_id',
  ]);
  t.like(got.json, { rpm_limit: 100, balance_cap_usd: '2.5', held_usd: '0', last_used_at: null });

  const defaults = await call('POST', `/admin/api/users/${user.id}/keys`, {});
  t.like(defaults.json, {
    name: '',
    rpm_limit: 60,
    balance_cap_usd: null,
    expires_at: null,
    status: 'active',
    allowed_models: null,
    max_concurrent_requests: null,
  });
  t.not(defaults.json.key, key);
  const listed = await call('GET', `/admin/api/users/${user.id}/keys`);
  t.deepEqual(
    listed.json.data.map((k: { id: number }) => k.id),
    [created.json.id, defaults.json.id],
  );
  t.false(listed.text.includes(secretPart));

  // The key works on /v1 (the key version exists), then every change takes effect on the next request.
  const v1 = () => fetch(`${base}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
  t.truthy(await svc.redis.get(svc.keys.keyVersion(hash)));
  t.is((await v1()).status, 200);

  const version = await svc.redis.get(svc.keys.keyVersion(hash));
  const disabled = await call('PATCH', `/admin/api/keys/${created.json.id}`, {
    disabled: true,
    rpm_limit: 5,
    balance_cap_usd: null,
    expires_at: null,
  });
  t.is(disabled.status, 200, disabled.text);
  t.like(disabled.json, { status: 'disabled', rpm_limit: 5, balance_cap_usd: null, expires_at: null });
  t.not(await svc.redis.get(svc.keys.keyVersion(hash)), version);
  const refused = await v1();
  t.is(refused.status, 403);
  t.is(((await refused.json()) as { error: { code: string } }).error.code, 'disabled');

  t.like((await call('PATCH', `/admin/api/keys/${created.json.id}`, { disabled: false, balance_cap_usd: 0.1 })).json, {
    status: 'active',
    balance_cap_usd: '0.1',
  });
  t.is((await v1()).status, 200);

  const revoked = await call('DELETE', `/admin/api/keys/${created.json.id}`);
  t.is(revoked.status, 200, revoked.text);
  t.like(revoked.json, { id: created.json.id, status: 'revoked' });
  t.false(revoked.text.includes(secretPart));
  const gone = await v1();
  t.is(gone.status, 401);
  t.is(((await gone.json()) as { error: { code: string } }).error.code, 'invalid_key');
  // A revoked key stays revoked.
  t.like((await call('PATCH', `/admin/api/keys/${created.json.id}`, { disabled: false })).json, { status: 'revoked' });
  t.is((await v1()).status, 401);
  t.true(await svc.db.selectFrom('api_keys').select('id').where('id', '=', created.json.id).executeTakeFirst().then(Boolean));
});

test('keys: validation and missing rows', async (t) => {
  const user = await newUser();
  const cases: [Record<string, unknown>, string][] = [
    [{ rpm_limit: 0 }, 'rpm_limit'],
    [{ rpm_limit: 'fast' }, 'rpm_limit'],
    [{ balance_cap_usd: -1 }, 'balance_cap_usd'],
    [{ balance_cap_usd: 'lots' }, 'balance_cap_usd'],
    [{ expires_at: 'next week' }, 'expires_at'],
    [{ expires_at: 12 }, 'expires_at'],
    // not a real day: refused, not rolled over into March
    [{ expires_at: '2027-02-30' }, 'expires_at'],
    [{ expires_at: '2026-04-31T00:00:00Z' }, 'expires_at'],
    [{ expires_at: '2027-01-01T24:00:00Z' }, 'expires_at'],
    // years a DATETIME or mysql2 would not give back as written (0049 came back as 2049: a live key)
    [{ expires_at: '0049-06-01T00:00:00Z' }, 'expires_at'],
    [{ expires_at: '0030-01-01' }, 'expires_at'],
    [{ expires_at: '1969-12-31T23:59:59Z' }, 'expires_at'],
    [{ name: 7 }, 'name'],
    [{ allowed_models: 'gpt-4o' }, 'allowed_models'],
    [{ allowed_models: ['gpt*4o'] }, 'allowed_models.0'],
    [{ allowed_models: ['*gpt'] }, 'allowed_models.0'],
    [{ allowed_models: [''] }, 'allowed_models.0'],
    [{ allowed_models: [3] }, 'allowed_models.0'],
    [{ allowed_models: ['a', 'a'] }, 'allowed_models'],
    [{ max_concurrent_requests: 0 }, 'max_concurrent_requests'],
    [{ max_concurrent_requests: 2.5 }, 'max_concurrent_requests'],
    [{ max_concurrent_requests: '3' }, 'max_concurrent_requests'],
  ];
  for (const [body, field] of cases) {
    t.regex(
      error(t, await call('POST', `/admin/api/users/${user.id}/keys`, body), 400, 'bad_request'),
      new RegExp(`^${field}:`),
      JSON.stringify(body),
    );
  }
  error(t, await call('POST', '/admin/api/users/999999/keys', {}), 404, 'not_found');
  const key = await call('POST', `/admin/api/users/${user.id}/keys`, {});
  t.regex(error(t, await call('PATCH', `/admin/api/keys/${key.json.id}`, { disabled: 'yes' }), 400, 'bad_request'), /^disabled:/);
  t.regex(error(t, await call('PATCH', `/admin/api/keys/${key.json.id}`, { rpm_limit: -5 }), 400, 'bad_request'), /^rpm_limit:/);
  // a misspelt change is refused, not answered 200 with nothing changed
  for (const [patch, field] of [
    [{ status: 'disabled' }, 'status'],
    [{ disabled: true, rpmlimit: 5 }, 'rpmlimit'],
  ] as const) {
    const refused = await call('PATCH', `/admin/api/keys/${key.json.id}`, patch);
    t.is(error(t, refused, 400, 'bad_request'), `${field}: unknown field`);
    t.is(refused.json.error.param, field);
  }
  t.like((await call('GET', `/admin/api/keys/${key.json.id}`)).json, { status: 'active' }, 'the refused patch changed nothing');
  t.regex(
    error(t, await call('PATCH', `/admin/api/keys/${key.json.id}`, { allowed_models: ['a b'] }), 400, 'bad_request'),
    /^allowed_models\.0:/,
  );
  const limited = await call('PATCH', `/admin/api/keys/${key.json.id}`, {
    allowed_models: ['gpt-4o*', '*', 'x/y.z'],
    max_concurrent_requests: 2,
  });
  t.like(limited.json, { max_concurrent_requests: 2 });
  t.deepEqual(limited.json.allowed_models, ['gpt-4o*', '*', 'x/y.z']);
  t.like(
    (await call('PATCH', `/admin/api/keys/${key.json.id}`, { rpm_limit: 9 })).json,
    { max_concurrent_requests: 2 },
    'kept when not given',
  );
  const lifted = await call('PATCH', `/admin/api/keys/${key.json.id}`, { allowed_models: null, max_concurrent_requests: null });
  t.like(lifted.json, { allowed_models: null, max_concurrent_requests: null });
  for (const method of ['GET', 'PATCH', 'DELETE']) {
    error(t, await call(method, '/admin/api/keys/999999', method === 'PATCH' ? {} : undefined), 404, 'not_found');
    error(t, await call(method, '/admin/api/keys/abc', method === 'PATCH' ? {} : undefined), 404, 'not_found');
  }
});

// ---- redemption codes

test('redemption codes: shown once, stored hashed, validated', async (t) => {
  const res = await call('POST', '/admin/api/redemption-codes', { amount_usd: '5', count: 3 });
  t.is(res.status, 201, res.text);
  const codes = res.json.codes as string[];
  t.is(codes.length, 3);
  t.is(new Set(codes).size, 3);
  for (const code of codes) t.regex(code, /^EASTX-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$/);
  const stored = await svc.db.selectFrom('redemption_codes').select(['code_hash', 'amount_nano']).execute();
  for (const code of codes) t.false(stored.some((row) => row.code_hash.includes(code) || row.code_hash === code));
  t.true(stored.every((row) => /^[0-9a-f]{64}$/.test(row.code_hash)));

  for (const [body, field] of [
    [{ amount_usd: 0, count: 1 }, 'amount_usd'],
    [{ amount_usd: '-1', count: 1 }, 'amount_usd'],
    [{ amount_usd: 1, count: 0 }, 'count'],
    [{ amount_usd: 1, count: 1001 }, 'count'],
    [{ amount_usd: 1 }, 'count'],
  ] as const) {
    t.regex(error(t, await call('POST', '/admin/api/redemption-codes', body), 400, 'bad_request'), new RegExp(`^${field}:`));
  }

  // Redeeming: any case and spacing, once.
  const user = await newUser();
  const redeemed = await redeemCode(svc.db, user.id, ` ${codes[0].toLowerCase()} `);
  t.is(redeemed.amountNano, 5_000_000_000n);
  t.is(redeemed.balanceNano, 5_000_000_000n);
  await t.throwsAsync(redeemCode(svc.db, user.id, codes[0]), { instanceOf: ApiError, message: /already redeemed/ });
  await t.throwsAsync(redeemCode(svc.db, user.id, 'EASTX-NOPE'), { instanceOf: ApiError, message: /^code:/ });
  // A missing user leaves the code unredeemed.
  await t.throwsAsync(redeemCode(svc.db, 999999, codes[1]), { instanceOf: ApiError, message: /no user/ });
  t.is((await redeemCode(svc.db, user.id, codes[1])).balanceNano, 10_000_000_000n);
  const ledger = await call('GET', `/admin/api/usage?user_id=${user.id}`);
  t.deepEqual(
    ledger.json.data.map((r: { kind: string; amount_usd: string }) => [r.kind, r.amount_usd]),
    [
      ['redemption', '5'],
      ['redemption', '5'],
    ],
  );
});

test('a code redeemed by 20 parallel calls credits exactly once', async (t) => {
  const [code] = (await call('POST', '/admin/api/redemption-codes', { amount_usd: '0.75', count: 1 })).json.codes as string[];
  const users = await Promise.all(Array.from({ length: 20 }, () => newUser()));
  const outcomes = await Promise.allSettled(users.map((u) => redeemCode(svc.db, u.id, code)));
  const winners = outcomes.filter((o) => o.status === 'fulfilled');
  t.is(winners.length, 1);
  for (const o of outcomes)
    if (o.status === 'rejected') t.true(o.reason instanceof ApiError && o.reason.code === 'bad_request', String(o.reason));
  const ids = users.map((u) => u.id);
  const rows = await svc.db
    .selectFrom('ledger')
    .select(['user_id', 'amount_nano'])
    .where('kind', '=', 'redemption')
    .where('user_id', 'in', ids)
    .execute();
  t.is(rows.length, 1);
  t.is(BigInt(rows[0].amount_nano), 750_000_000n);
  const balances = await svc.db.selectFrom('users').select(['id', 'balance_nano']).where('id', 'in', ids).execute();
  t.is(balances.filter((b) => BigInt(b.balance_nano) !== 0n).length, 1);
  t.is(Number(balances.find((b) => BigInt(b.balance_nano) !== 0n)!.id), Number(rows[0].user_id));
});
