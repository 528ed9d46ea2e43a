import { createHash } from 'node:crypto';
import test from 'ava';
import { sql } from 'kysely';
import OpenAI from 'openai';
import { formatUsd } from '../src/billing/money.js';
import { createDb, type Db } from '../src/db/index.js';
import { createRedis, type Redis } from '../src/redis/index.js';
import { type Bed, startBed } from './helpers/bed.js';
import { ConsoleClient } from './helpers/console-client.js';

// The console over plain HTTP, as an attacker would try it: sessions, CSRF, throttles, ownership, hostile forms.
let bed: Bed;
let db: Db;
let redis: Redis;
let channelId: number;
const PASSWORD = 'a perfectly fine password';

test.before(async () => {
  bed = await startBed('console');
  const { admin, mock, env } = bed;
  db = createDb(env.DATABASE_URL, 2);
  redis = createRedis(env.REDIS_URL);
  channelId = (await admin.channel('console-openai', 'openai', `${mock.url}/v1`)).id;
  await admin.token(channelId, 'tok-console', 8);
  await admin.model('console/alpha', { channel_id: channelId, upstream_model: 'mock-gpt', input_price_per_1m: 1, output_price_per_1m: 4 });
  await admin.model('console/beta', { channel_id: channelId, upstream_model: 'mock-gpt', input_price_per_1m: 3, output_price_per_1m: 9 });
  await admin.model('console/soon', { channel_id: channelId, upstream_model: 'mock-gpt', status: 'coming_soon' });
  await admin.model('console/off', { channel_id: channelId, upstream_model: 'mock-gpt', status: 'disabled' });
});

test.after.always(async () => {
  await bed?.stop();
  await db?.destroy();
  await redis?.quit();
});

const userIdOf = async (email: string) =>
  (await bed.admin.call<{ data: Array<{ id: number }> }>('GET', `/admin/api/users?email=${encodeURIComponent(email)}`)).data[0].id;
const cookieLine = (res: Response, name: string) => res.headers.getSetCookie().find((c) => c.startsWith(`${name}=`)) ?? '';

test("public pages: the live catalog, the deployment's own base URL, and security headers on every answer", async (t) => {
  const visitor = new ConsoleClient(bed.url);
  const pricing = await visitor.get('/pricing');
  t.is(pricing.res.status, 200);
  t.true(pricing.text.includes('console/alpha') && pricing.text.includes('coming soon'));
  t.false(pricing.text.includes('console/off'), 'disabled models are not offered');
  const docs = await visitor.request('GET', '/docs', {
    headers: { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'api.eastx.example' },
  });
  t.true(docs.text.includes('https://api.eastx.example/v1'), 'quickstarts use the base URL the visitor came through');
  t.true(docs.text.includes('insufficient_balance') && docs.text.includes('console/alpha'), 'the error table and live model list');
  t.true(
    docs.text.includes('ANTHROPIC_BASE_URL=https://api.eastx.example\n'),
    'Claude Code gets the bare origin (it appends /v1/messages)',
  );
  t.true((await visitor.get('/')).text.includes(`${bed.url}/v1`));

  for (const [path, accept] of [
    ['/', 'text/html'],
    ['/no-such-page', 'application/json'],
    ['/static/eastx.css', 'text/css'],
  ]) {
    const res = await fetch(`${bed.url}${path}`, { headers: { accept } });
    const csp = res.headers.get('content-security-policy') ?? '';
    t.regex(csp, /script-src 'self'(;|$)/, `${path}: CSP without inline script`);
    t.regex(csp, /frame-ancestors 'none'/);
    t.is(res.headers.get('x-content-type-options'), 'nosniff', path);
    t.is(res.headers.get('x-frame-options'), 'DENY', path);
    t.is(res.headers.get('referrer-policy'), 'same-origin', path);
  }
  // the API answers clients, not browsers: OWASP's short REST set, answered or refused alike
  for (const path of ['/v1/models', '/v1/no-such-route']) {
    const res = await fetch(`${bed.url}${path}`, { headers: { authorization: 'Bearer sk-eastx-wrong' } });
    t.is(res.headers.get('content-security-policy'), "default-src 'none'; frame-ancestors 'none'", path);
    t.is(res.headers.get('x-content-type-options'), 'nosniff', path);
    t.is(res.headers.get('x-frame-options'), 'DENY', path);
    t.regex(res.headers.get('strict-transport-security') ?? '', /max-age=\d+/, path);
  }
});

test('sign-up opens a session: HttpOnly SameSite=Lax cookie, Secure behind HTTPS, stored in Redis only as a hash', async (t) => {
  const plain = new ConsoleClient(bed.url);
  await plain.get('/signup');
  const { res } = await plain.post('/signup', { email: 'cookie@example.com', password: PASSWORD });
  t.is(res.status, 303);
  t.is(res.headers.get('location'), '/keys');
  const line = cookieLine(res, 'eastx_session');
  t.regex(line, /httponly/i);
  t.regex(line, /samesite=lax/i);
  t.notRegex(line, /secure/i, 'plain HTTP: no Secure flag');
  t.truthy(cookieLine(res, 'eastx_session.sig'), 'the cookie is signed');

  const id = plain.cookies.get('eastx_session')!;
  const keys = await redis.keys(`{${bed.env.QUEUE_PREFIX}}:session:*`);
  t.true(
    keys.some((k) => k.endsWith(createHash('sha256').update(id).digest('hex'))),
    'Redis holds the hash of the id',
  );
  t.false(
    keys.some((k) => k.includes(id)),
    'never the id itself',
  );
  for (const key of keys) t.false((await redis.get(key))!.includes(id));

  const behindProxy = new ConsoleClient(bed.url, { 'x-forwarded-proto': 'https' });
  await behindProxy.get('/signup');
  const secure = await behindProxy.post('/signup', { email: 'secure@example.com', password: PASSWORD });
  t.regex(cookieLine(secure.res, 'eastx_session'), /;\s*secure/i, 'Secure when the request came over HTTPS (X-Forwarded-Proto)');
});

test('a forged or unsigned session cookie is no session; log-out ends the session on the server', async (t) => {
  const user = new ConsoleClient(bed.url);
  await user.signUp('logout@example.com', PASSWORD);
  t.is((await user.get('/keys')).res.status, 200);
  const stolen = new Map(user.cookies);

  const forged = new ConsoleClient(bed.url);
  forged.cookies.set('eastx_session', stolen.get('eastx_session')!); // no signature
  t.is((await forged.get('/keys')).res.status, 303);
  forged.cookies.set('eastx_session.sig', 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA');
  t.is((await forged.get('/keys')).res.status, 303, 'a wrong signature');

  await user.get('/keys');
  const out = await user.post('/logout', {});
  t.is(out.res.status, 303);
  const replay = new ConsoleClient(bed.url);
  for (const [k, v] of stolen) replay.cookies.set(k, v);
  const after = await replay.get('/keys');
  t.is(after.res.status, 303, 'the old cookie opens nothing after log-out');
  t.is(after.res.headers.get('location'), '/login?next=%2Fkeys');
});

test('pages that need a session: a browser is redirected to /login, a script gets 401 JSON', async (t) => {
  for (const path of ['/keys', '/recharge', '/usage', '/usage.csv', '/admin', '/admin/users', '/admin/codes']) {
    const browserish = await fetch(`${bed.url}${path}`, { redirect: 'manual', headers: { accept: 'text/html' } });
    t.is(browserish.status, 303, path);
    t.regex(browserish.headers.get('location') ?? '', /^\/login(\?next=|$)/, path);
    const script = await fetch(`${bed.url}${path}`, { redirect: 'manual', headers: { accept: 'application/json' } });
    t.is(script.status, 401, path);
    t.is(((await script.json()) as { error: { code: string } }).error.code, 'missing_key');
  }
  const post = await fetch(`${bed.url}/keys`, {
    method: 'POST',
    redirect: 'manual',
    headers: { accept: 'text/html', 'content-type': 'application/x-www-form-urlencoded' },
    body: 'name=x',
  });
  t.is(post.status, 303, 'a form post without a session goes to /login too');
  const next = new ConsoleClient(bed.url);
  t.is((await next.get('/login?next=//evil.example')).text.includes('evil.example'), false, 'next= only takes same-site paths');
});

test('log-in: one message for a wrong password and an unknown email; throttled per email, even for the right password', async (t) => {
  const owner = new ConsoleClient(bed.url);
  await owner.signUp('throttle@example.com', PASSWORD);
  const attacker = new ConsoleClient(bed.url, { 'x-forwarded-for': '198.51.100.20' });
  await attacker.get('/login');
  const wrong = await attacker.post('/login', { email: 'throttle@example.com', password: 'not it at all' });
  const unknown = await attacker.post('/login', { email: 'nobody-here@example.com', password: 'not it at all' });
  t.is(wrong.res.status, 401);
  t.is(unknown.res.status, 401);
  const message = (text: string) => /role="alert">([^<]*)</.exec(text)?.[1];
  t.is(message(wrong.text), 'Wrong email or password.');
  t.is(message(unknown.text), message(wrong.text), 'the page does not tell whether the email has an account');

  for (let i = 0; i < 4; i++)
    t.is((await attacker.post('/login', { email: 'throttle@example.com', password: `guess ${i}` })).res.status, 401);
  const blocked = await attacker.post('/login', { email: 'throttle@example.com', password: PASSWORD });
  t.is(blocked.res.status, 429, 'the sixth attempt waits, whatever the password');
  t.truthy(blocked.res.headers.get('retry-after'));
  const elsewhere = new ConsoleClient(bed.url, { 'x-forwarded-for': '203.0.113.99' });
  t.is((await elsewhere.logIn('throttle@example.com', PASSWORD)).status, 429, 'per email: another address does not help');
  t.is((await new ConsoleClient(bed.url).logIn('cookie@example.com', PASSWORD)).status, 303, 'other accounts are not affected');
});

test("log-in throttle per IP: the address Heroku's router appends counts, a forged leftmost one does not help", async (t) => {
  const ip = '192.0.2.77';
  const client = new ConsoleClient(bed.url);
  await client.get('/login');
  for (let i = 0; i < 50; i++) {
    const res = await client.post(
      '/login',
      { email: `spray-${i}@example.com`, password: 'guess' },
      { headers: { 'x-forwarded-for': `10.${i}.0.1, ${ip}` } },
    );
    t.is(res.res.status, 401);
  }
  const blocked = await client.post(
    '/login',
    { email: 'cookie@example.com', password: PASSWORD },
    { headers: { 'x-forwarded-for': `10.99.0.1, ${ip}` } },
  );
  t.is(blocked.res.status, 429);
  const other = await client.post(
    '/login',
    { email: 'cookie@example.com', password: PASSWORD },
    { headers: { 'x-forwarded-for': '192.0.2.78' } },
  );
  t.is(other.res.status, 303, 'another client address logs in');
});

test('sign-ups are throttled per client address: the eleventh within an hour waits', async (t) => {
  const from = new ConsoleClient(bed.url, { 'x-forwarded-for': '192.0.2.201' });
  for (let i = 0; i < 10; i++) {
    await from.get('/signup'); // each sign-up opens a new session, with a new CSRF token
    t.is((await from.post('/signup', { email: `many-${i}@example.com`, password: PASSWORD })).res.status, 303);
  }
  await from.get('/signup');
  const blocked = await from.post('/signup', { email: 'many-10@example.com', password: PASSWORD });
  t.is(blocked.res.status, 429);
  t.truthy(blocked.res.headers.get('retry-after'));
  t.deepEqual(
    (await bed.admin.call<{ data: unknown[] }>('GET', '/admin/api/users?email=many-10%40example.com')).data,
    [],
    'no account was made',
  );
});

test('keys: created, shown once (sealed in Redis meanwhile), edited and revoked only by their owner', async (t) => {
  const ada = new ConsoleClient(bed.url);
  await ada.signUp('keys-ada@example.com', PASSWORD);
  const created = await ada.post('/keys', { name: 'ci', rpm_limit: '90', balance_cap_usd: '2.5', expires_at: '2099-12-31' });
  t.is(created.res.status, 303);
  // other tests of this file run meanwhile: a flash of theirs may be read (and deleted) between KEYS and GET
  const flashes = await Promise.all((await redis.keys(`{${bed.env.QUEUE_PREFIX}}:flash:*`)).map((key) => redis.get(key)));
  const present = flashes.filter((flash): flash is string => flash !== null);
  t.true(present.length > 0, "the new key's flash is in Redis until its page is shown");
  for (const flash of present) t.false(flash.includes('sk-eastx-'), 'the flash is sealed');
  const page = await ada.get('/keys');
  const key = /data-testid="new-key">([^<]+)</.exec(page.text)?.[1] ?? '';
  t.regex(key, /^sk-eastx-/);
  t.false((await ada.get('/keys')).text.includes(key), 'shown once');

  const adaId = await userIdOf('keys-ada@example.com');
  const [row] = (
    await bed.admin.call<{ data: Array<{ id: number; rpm_limit: number; balance_cap_usd: string | null; expires_at: string }> }>(
      'GET',
      `/admin/api/users/${adaId}/keys`,
    )
  ).data;
  t.is(row.rpm_limit, 90);
  t.is(row.balance_cap_usd, '2.5');
  t.is(row.expires_at, '2099-12-31T23:59:59.999Z', 'a date means through the end of that UTC day');

  await ada.get('/keys');
  t.is((await ada.post(`/keys/${row.id}`, { rpm_limit: '120', balance_cap_usd: '' })).res.status, 303);
  const edited = await bed.admin.call<{ rpm_limit: number; balance_cap_usd: string | null }>('GET', `/admin/api/keys/${row.id}`);
  t.is(edited.rpm_limit, 120);
  t.is(edited.balance_cap_usd, null, 'an empty cap removes it');
  const bad = await ada.post(`/keys/${row.id}`, { rpm_limit: 'lots', balance_cap_usd: '' });
  t.is(bad.res.status, 400);
  t.regex(bad.text, /rpm_limit: must be an integer/);

  const eve = new ConsoleClient(bed.url);
  await eve.signUp('keys-eve@example.com', PASSWORD);
  t.is((await eve.get(`/keys/${row.id}/revoke`)).res.status, 404, "another account's key does not exist for her");
  t.is((await eve.post(`/keys/${row.id}/revoke`, {})).res.status, 404);
  t.is((await eve.post(`/keys/${row.id}`, { rpm_limit: '1', balance_cap_usd: '0' })).res.status, 404);
  t.is((await bed.admin.call<{ status: string; rpm_limit: number }>('GET', `/admin/api/keys/${row.id}`)).status, 'active');

  await ada.get(`/keys/${row.id}/revoke`);
  t.is((await ada.post(`/keys/${row.id}/revoke`, {})).res.status, 303);
  t.is((await bed.admin.call<{ status: string }>('GET', `/admin/api/keys/${row.id}`)).status, 'revoked');
});

test('hostile form bodies get contract answers (400/403/413), never a 500, and change nothing', async (t) => {
  const user = new ConsoleClient(bed.url);
  await user.signUp('hostile@example.com', PASSWORD);
  const userId = await userIdOf('hostile@example.com');
  const token = user.csrf!;
  const send = (body: string | Buffer, type = 'application/x-www-form-urlencoded') =>
    fetch(`${bed.url}/keys`, {
      method: 'POST',
      redirect: 'manual',
      headers: { accept: 'text/html', cookie: [...user.cookies].map(([k, v]) => `${k}=${v}`).join('; '), 'content-type': type },
      body,
    });
  const cases: Array<[string, Promise<Response>, number[]]> = [
    ['JSON instead of a form', send(JSON.stringify({ _csrf: token, name: 'x' }), 'application/json'), [400]],
    ['another charset', send(`_csrf=${token}&name=x`, 'application/x-www-form-urlencoded; charset=iso-8859-1'), [400]],
    ['over 64 KB', send(`_csrf=${token}&name=${'a'.repeat(70_000)}`), [413]],
    ['a field twice', send(`_csrf=${token}&name=a&name=b`), [400]],
    ['too many fields', send(`_csrf=${token}&${Array.from({ length: 100 }, (_, i) => `f${i}=1`).join('&')}`), [400]],
    ['no CSRF token', send('name=x'), [403]],
    ['a wrong CSRF token', send('_csrf=AAAA&name=x'), [403]],
    ['the CSRF token twice', send(`_csrf=${token}&_csrf=${token}&name=x`), [400]],
    ['broken percent-encoding', send(`_csrf=${token}&name=%ZZ%C3%28&rpm_limit=%FF`), [400]],
    [
      'invalid UTF-8 bytes',
      send(Buffer.concat([Buffer.from(`_csrf=${token}&name=`), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('&rpm_limit=1e999')])),
      [400],
    ],
    ['a NUL in the name', send(`_csrf=${token}&name=a%00b`), [400]],
    ['a 1000-character name', send(`_csrf=${token}&name=${'n'.repeat(1000)}`), [400]],
    ['a negative cap', send(`_csrf=${token}&balance_cap_usd=-5`), [400]],
    ['an expiry in the past', send(`_csrf=${token}&expires_at=2001-01-01`), [400]],
    ['an expiry on a day that does not exist', send(`_csrf=${token}&expires_at=2099-02-30`), [400]],
    ['a prototype key', send(`_csrf=${token}&__proto__=x&constructor=y&name=ok&rpm_limit=0`), [400]],
  ];
  for (const [label, answer, allowed] of cases) {
    const res = await answer;
    t.true(allowed.includes(res.status), `${label}: ${res.status}`);
    t.regex(res.headers.get('content-type') ?? '', /text\/html/, `${label}: a page for the browser`);
  }
  const { data } = await bed.admin.call<{ data: unknown[] }>('GET', `/admin/api/users/${userId}/keys`);
  t.deepEqual(data, [], 'no key was created');
  t.is((await fetch(`${bed.url}/healthz`)).status, 200);
});

test('two sessions redeeming one code at the same moment: credited once, the other is told', async (t) => {
  const { codes } = await bed.admin.call<{ codes: string[] }>('POST', '/admin/api/redemption-codes', { amount_usd: '4', count: 1 });
  const one = new ConsoleClient(bed.url);
  const two = new ConsoleClient(bed.url);
  await Promise.all([one.signUp('race-one@example.com', PASSWORD), two.signUp('race-two@example.com', PASSWORD)]);
  await Promise.all([one.get('/recharge'), two.get('/recharge')]);
  const answers = await Promise.all([
    one.post('/recharge', { code: codes[0] }),
    two.post('/recharge', { code: codes[0] }),
    one.post('/recharge', { code: codes[0].toLowerCase() }),
  ]);
  t.deepEqual(answers.map((a) => a.res.status).sort(), [303, 400, 400]);
  const balances = await Promise.all(
    ['race-one@example.com', 'race-two@example.com'].map(async (email) => (await bed.admin.getUser(await userIdOf(email))).balance_usd),
  );
  t.deepEqual(balances.sort(), ['0', '4']);
});

test('a customer session opens no operator page, no admin API and no Bull Board', async (t) => {
  const user = new ConsoleClient(bed.url);
  await user.signUp('customer-only@example.com', PASSWORD);
  for (const path of ['/admin', '/admin/users', '/admin/channels', '/admin/queues', '/admin/queues/api/queues']) {
    t.is((await user.get(path)).res.status, 403, path);
  }
  await user.get('/keys');
  t.is((await user.post('/admin/codes', { amount_usd: '100', count: '1' })).res.status, 403);
  t.is((await user.get('/admin/api/users')).res.status, 401, 'the admin API takes only the token');
});

test('operators: admin API users (search, password, is_admin), the ADMIN_TOKEN log-in, credit and adjust forms, Bull Board writes same-origin only', async (t) => {
  const created = await bed.admin.call<{ id: number; is_admin: boolean }>('POST', '/admin/api/users', {
    email: 'Ops@Example.com',
    password: PASSWORD,
    is_admin: true,
  });
  t.true(created.is_admin);
  const found = await bed.admin.call<{
    data: Array<{ id: number; email: string; balance_usd: string; held_usd: string; is_admin: boolean }>;
  }>('GET', '/admin/api/users?email=ops@example.com');
  t.deepEqual(
    found.data.map((u) => [u.id, u.email, u.is_admin, u.balance_usd, u.held_usd]),
    [[created.id, 'ops@example.com', true, '0', '0']],
  );
  // the file's tests run concurrently: make sure a second user exists whichever ran first
  await bed.admin.call('POST', '/admin/api/users', { email: 'ops-second@example.com' });
  const newest = await bed.admin.call<{ data: Array<{ id: number }> }>('GET', '/admin/api/users?limit=2');
  t.is(newest.data.length, 2);
  t.true(newest.data[0].id > newest.data[1].id, 'newest first');
  const older = await bed.admin.call<{ data: Array<{ id: number }> }>('GET', `/admin/api/users?limit=1&before_id=${newest.data[1].id}`);
  t.true(older.data[0].id < newest.data[1].id, 'before_id pages further back');
  t.is(
    (await fetch(`${bed.url}/admin/api/users?email=a&email=b`, { headers: { authorization: `Bearer ${bed.env.ADMIN_TOKEN}` } })).status,
    400,
  );

  const ops = new ConsoleClient(bed.url);
  t.is((await ops.logIn('ops@example.com', PASSWORD)).status, 303);
  t.is((await ops.get('/admin')).res.status, 200, 'an is_admin user reaches the operator area');

  const target = await bed.admin.user('credit-me@example.com');
  await ops.get(`/admin/users/${target.id}`);
  t.is((await ops.post(`/admin/users/${target.id}/credit`, { amount_usd: '12.5', note: 'welcome' })).res.status, 303);
  await ops.get(`/admin/users/${target.id}`);
  const noNote = await ops.post(`/admin/users/${target.id}/adjust`, { amount_usd: '-2', note: '' });
  t.is(noNote.res.status, 400, 'an adjustment needs a note');
  t.is((await ops.post(`/admin/users/${target.id}/adjust`, { amount_usd: '-2', note: 'refund taken back' })).res.status, 303);
  t.is((await bed.admin.getUser(target.id)).balance_usd, '10.5');

  const form = {
    id: 'console/cached',
    display_name: 'Cached',
    owned_by: 'test',
    modality: 'chat',
    status: 'active',
    'routes[0][channel_id]': String(channelId),
    'routes[0][upstream_model]': 'mock-gpt',
    'routes[0][priority]': '0',
    'routes[0][weight]': '1',
    input_price_per_1m: '3',
    output_price_per_1m: '15',
    max_output_tokens: '4096',
  };
  await ops.get('/admin/models/edit');
  const saved = await ops.post('/admin/models', { ...form, cache_read_price_per_1m: '0.3', cache_write_price_per_1m: '' });
  t.is(saved.res.status, 303);
  const cachedModel = (await bed.admin.call<{ data: Array<Record<string, string>> }>('GET', '/admin/api/models')).data.find(
    (m) => m.id === 'console/cached',
  );
  t.like(cachedModel, { cache_read_price_per_1m: '0.3', cache_write_price_per_1m: '3' }, 'a blank cache price is the input price');
  const edit = await ops.get(`/admin/models/edit?id=${encodeURIComponent('console/cached')}`);
  t.regex(edit.text, /name="cache_read_price_per_1m"[^>]*value="0.3"/);
  t.regex(
    edit.text,
    /name="cache_write_price_per_1m"[^>]*value=""/,
    'a default cache price is shown blank, so it keeps following the input price',
  );

  const tokenSession = new ConsoleClient(bed.url);
  await tokenSession.get('/admin/login');
  t.is((await tokenSession.post('/admin/login', { token: 'not-the-token' })).res.status, 401);
  t.is((await tokenSession.post('/admin/login', { token: bed.env.ADMIN_TOKEN })).res.status, 303);
  t.is((await tokenSession.get('/admin/channels')).res.status, 200);
  const board = await tokenSession.request('GET', '/admin/queues/api/queues', { headers: { accept: 'application/json' } });
  t.is(board.res.status, 200, 'Bull Board behind the same session');
  const crossSite = await tokenSession.request('PUT', `/admin/queues/api/queues/channel-${channelId}/pause`, {
    headers: { origin: 'http://evil.example', 'sec-fetch-site': 'cross-site' },
  });
  t.is(crossSite.res.status, 403, 'a cross-site write to the board is refused');
});

test('keys: allowed models and requests at once, set at creation and edited on /keys', async (t) => {
  const bo = new ConsoleClient(bed.url);
  await bo.signUp('keys-limits@example.com', PASSWORD);
  await bo.get('/keys');
  const created = await bo.post('/keys', { name: 'limited', allowed_models: 'console/alpha, gpt-4o*', max_concurrent_requests: '2' });
  t.is(created.res.status, 303);
  const boId = await userIdOf('keys-limits@example.com');
  const [row] = (
    await bed.admin.call<{ data: Array<{ id: number; allowed_models: string[] | null; max_concurrent_requests: number | null }> }>(
      'GET',
      `/admin/api/users/${boId}/keys`,
    )
  ).data;
  t.deepEqual(row.allowed_models, ['console/alpha', 'gpt-4o*']);
  t.is(row.max_concurrent_requests, 2);
  const page = await bo.get('/keys');
  t.regex(page.text, /<code>console\/alpha<\/code>, <code>gpt-4o\*<\/code>/);
  t.true(page.text.includes('value="console/alpha, gpt-4o*"'), 'the edit form shows the list');

  const bad = await bo.post(`/keys/${row.id}`, {
    rpm_limit: '60',
    balance_cap_usd: '',
    allowed_models: 'a*b',
    max_concurrent_requests: '',
  });
  t.is(bad.res.status, 400);
  t.regex(bad.text, /allowed_models\.0: must be a model id/);
  await bo.get('/keys');
  const lifted = await bo.post(`/keys/${row.id}`, {
    rpm_limit: '60',
    balance_cap_usd: '',
    allowed_models: '',
    max_concurrent_requests: '',
  });
  t.is(lifted.res.status, 303);
  t.like(
    await bed.admin.call('GET', `/admin/api/keys/${row.id}`),
    { allowed_models: null, max_concurrent_requests: null },
    'empty lifts both',
  );
});

test('operator models page: routes edited in the form, shown with their state', async (t) => {
  const ops = new ConsoleClient(bed.url);
  await ops.get('/admin/login');
  t.is((await ops.post('/admin/login', { token: bed.env.ADMIN_TOKEN })).res.status, 303);
  const second = await bed.admin.channel('console-second', 'openai', `${bed.mock.url}/v1`);
  const form = await ops.get('/admin/models/edit');
  t.is(form.res.status, 200);
  for (const field of [
    'routes[0][channel_id]',
    'routes[0][upstream_model]',
    'routes[0][priority]',
    'routes[0][weight]',
    'routes[1][channel_id]',
  ])
    t.true(form.text.includes(`name="${field}"`), field);
  const fields = {
    id: 'console/routed',
    display_name: 'Routed',
    owned_by: 'eastx',
    modality: 'chat',
    status: 'active',
    input_price_per_1m: '1',
    output_price_per_1m: '2',
    max_output_tokens: '100',
    sizes: '',
    'routes[0][channel_id]': String(channelId),
    'routes[0][upstream_model]': 'mock-gpt',
    'routes[0][priority]': '5',
    'routes[0][weight]': '1',
    'routes[1][channel_id]': String(second.id),
    'routes[1][upstream_model]': 'mock-gpt-b',
    'routes[1][priority]': '0',
    'routes[1][weight]': '3',
    'routes[2][channel_id]': '',
    'routes[2][upstream_model]': '',
    'routes[2][priority]': '0',
    'routes[2][weight]': '1',
  };
  t.is((await ops.post('/admin/models', fields)).res.status, 303);
  const model = (
    await bed.admin.call<{ data: Array<{ id: string; routes: Array<Record<string, unknown>> }> }>('GET', '/admin/api/models')
  ).data.find((m) => m.id === 'console/routed')!;
  t.deepEqual(
    model.routes.map((r) => [r.channel_id, r.upstream_model, r.priority, r.weight, r.state]),
    [
      [channelId, 'mock-gpt', 5, 1, 'healthy'],
      [second.id, 'mock-gpt-b', 0, 3, 'disabled'],
    ],
  );
  const list = await ops.get('/admin/models');
  t.true(
    list.text.includes(`console-second #${second.id} → <code>mock-gpt-b</code> · p0 · w3 · <span class="status disabled">disabled</span>`),
    'each route with its state',
  );
  const edit = await ops.get(`/admin/models/edit?id=${encodeURIComponent('console/routed')}`);
  t.true(edit.text.includes('value="mock-gpt-b"'), 'the form shows the routes');

  await ops.get('/admin/models/edit');
  const broken = await ops.post('/admin/models', { ...fields, 'routes[1][upstream_model]': '' });
  t.is(broken.res.status, 400);
  t.regex(broken.text, /routes\.1\.upstream_model: must not be empty/);
  t.true(broken.text.includes('value="mock-gpt"'), 'what was typed is shown again');
});

test('usage: the daily rollup matches the ledger, and /usage and its CSV show it', async (t) => {
  const user = new ConsoleClient(bed.url);
  await user.signUp('usage@example.com', PASSWORD);
  const userId = await userIdOf('usage@example.com');
  await bed.admin.call('POST', `/admin/api/users/${userId}/credit`, { amount_usd: '3' });
  const { key } = await bed.admin.key(userId, { rpm_limit: 1000 });
  const client = new OpenAI({ baseURL: `${bed.url}/v1`, apiKey: key, maxRetries: 0 });
  for (const model of ['console/alpha', 'console/beta', 'console/alpha'])
    await client.chat.completions.create({ model, messages: [{ role: 'user', content: `usage ${model}` }] });

  const ledger = await sql<{ day: string; model: string; n: number; p: string; c: string; spent: string }>`
    SELECT DATE_FORMAT(created_at, '%Y-%m-%d') AS day, model, COUNT(*) AS n, SUM(prompt_tokens) AS p, SUM(completion_tokens) AS c, -SUM(amount_nano) AS spent
    FROM ledger WHERE user_id = ${userId} AND kind = 'charge' GROUP BY day, model ORDER BY model`.execute(db);
  const rollup = await sql<{ day: string; model: string; n: number; p: string; c: string; spent: string }>`
    SELECT DATE_FORMAT(day, '%Y-%m-%d') AS day, model, requests AS n, prompt_tokens AS p, completion_tokens AS c, spent_nano AS spent
    FROM usage_daily WHERE user_id = ${userId} ORDER BY model`.execute(db);
  const norm = (rows: Array<Record<string, unknown>>) => rows.map((r) => Object.values(r).map(String));
  t.is(ledger.rows.length, 2);
  t.deepEqual(norm(rollup.rows), norm(ledger.rows), 'usage_daily = the ledger summed per day and model');

  const page = await user.get('/usage');
  t.is(page.res.status, 200);
  t.regex(page.text, /data-testid="usage-requests">3</);
  const csv = await user.get('/usage.csv');
  t.regex(csv.res.headers.get('content-type') ?? '', /^text\/csv/);
  t.regex(
    csv.res.headers.get('content-disposition') ?? '',
    /^attachment; filename="eastx-usage-\d{4}-\d{2}-\d{2}-to-\d{4}-\d{2}-\d{2}\.csv"$/,
  );
  const lines = csv.text.trim().split('\n');
  t.is(lines[0], 'day,model,requests,prompt_tokens,completion_tokens,images,cost_usd');
  const alpha = ledger.rows.find((r) => r.model === 'console/alpha')!;
  t.true(lines.includes(`${alpha.day},console/alpha,2,${alpha.p},${alpha.c},0,${formatUsd(BigInt(alpha.spent))}`));

  for (const query of [
    'from=2030-02-01&to=2030-01-01',
    'from=2020-01-01&to=2030-01-01',
    'from=yesterday',
    'from=2030-02-30',
    'from=a&from=b',
  ]) {
    t.is((await user.get(`/usage?${query}`)).res.status, 400, query);
  }
  t.is((await user.get('/usage?from=2000-01-01&to=2000-01-31')).res.status, 200, 'an empty range is fine');
});
