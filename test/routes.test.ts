import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import type { Behavior } from '../src/mock/upstream.js';
import { type Bed, startBed } from './helpers/bed.js';
import { newCustomer } from './helpers/customer.js';
import { StreamReader } from './helpers/stream.js';
import { until } from './helpers/wait.js';

// Issue 16, end to end: models with several routes, cross-channel failover, channel health and its probe,
// per-key model lists and concurrency limits, through 2 web and 2 worker processes against the mock
// upstream. Every token's concurrency is checked at the end, and the ledger audit must pass.

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const FIRST_BYTE_MS = 2_000;
const PROBE_MS = 500;

let bed: Bed;
let userId: number;
let apiKey: string;
let keyId: number;
/** Successful answers per key id (each must be charged exactly once). */
const answered = new Map<number, Set<string>>();

test.before(async () => {
  bed = await startBed('routes', {
    env: { UPSTREAM_FIRST_BYTE_MS: String(FIRST_BYTE_MS), CHANNEL_PROBE_MS: String(PROBE_MS), CHANNEL_UNHEALTHY_AFTER: '5' },
    webs: 2,
    workers: 2,
  });
  ({ userId, keyId, apiKey } = await newCustomer(bed.admin, 'routes@example.com', '500', { rpm_limit: 100_000 }));
});

test.after.always(() => bed?.stop());

/** Every upstream token made here, with its limit: none may ever see more calls at once (checked last). */
const tokens: Array<{ secret: string; max: number }> = [];
let channels = 0;

/** A channel of its own on the mock with `n` tokens (secrets unique to this run). */
async function channel(n: number, maxConcurrency: number, behavior: Partial<Behavior> = {}) {
  const c = await bed.admin.channel(`routes-${++channels}`, 'openai', `${bed.mock.url}/v1`);
  const secrets: string[] = [];
  for (let i = 0; i < n; i++) {
    const secret = `rt${channels}-${i}-${randomBytes(6).toString('hex')}`;
    await bed.admin.token(c.id, secret, maxConcurrency, `t${i}`);
    bed.mock.setBehavior(secret, behavior);
    tokens.push({ secret, max: maxConcurrency });
    secrets.push(secret);
  }
  return { id: c.id, secrets, calls: () => secrets.reduce((sum, s) => sum + bed.mock.stats(s).calls, 0) };
}
type Channel = Awaited<ReturnType<typeof channel>>;

function model(id: string, routes: Array<{ channel: Channel; priority?: number; weight?: number }>) {
  return bed.admin.model(id, {
    routes: routes.map((r) => ({ channel_id: r.channel.id, upstream_model: 'mock-gpt', priority: r.priority ?? 0, weight: r.weight ?? 1 })),
    input_price_per_1m: 2,
    output_price_per_1m: 8,
  });
}

type ErrorJson = { error?: { code: string; message: string; type: string; param: string | null } };
let turn = 0;
/** One chat request through the web processes in turn; a 200 is recorded as an answer of its key. */
async function chat(modelId: string, opts: { key?: string; keyId?: number; content?: string; init?: RequestInit; web?: number } = {}) {
  const base = bed.gateway.urls[opts.web ?? turn++ % bed.gateway.urls.length];
  const res = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${opts.key ?? apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: modelId, messages: [{ role: 'user', content: opts.content ?? 'hi' }], max_tokens: 20 }),
    ...opts.init,
  });
  const json = (await res.json().catch(() => ({}))) as ErrorJson;
  if (res.status === 200) record(opts.keyId ?? keyId, res);
  return { res, json };
}

function record(key: number, res: Response) {
  const set = answered.get(key) ?? new Set<string>();
  set.add(res.headers.get('x-request-id')!);
  answered.set(key, set);
}

/** Runs `work(i)` for i < n, at most `concurrency` at a time. */
async function inParallel<T>(n: number, concurrency: number, work: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++;
        results[i] = await work(i);
      }
    }),
  );
  return results;
}

interface RouteView {
  channel_id: number;
  upstream_model: string;
  priority: number;
  weight: number;
  state: string;
  cooling_until: string | null;
  unhealthy_since: string | null;
  last_error: string | null;
}
async function routesOf(modelId: string): Promise<RouteView[]> {
  const list = await bed.admin.call<{ data: Array<{ id: string; routes: RouteView[] }> }>('GET', '/admin/api/models');
  return list.data.find((m) => m.id === modelId)!.routes;
}
const routeOn = async (modelId: string, c: Channel) => (await routesOf(modelId)).find((r) => r.channel_id === c.id)!;

async function metrics(): Promise<string> {
  const res = await fetch(`${bed.gateway.urls[0]}/metrics`, { headers: { authorization: `Bearer ${bed.env.ADMIN_TOKEN}` } });
  return res.text();
}

function statuses(results: Array<{ res: Response }>): Record<number, number> {
  const count: Record<number, number> = {};
  for (const { res } of results) count[res.status] = (count[res.status] ?? 0) + 1;
  return count;
}

test.serial('two routes of one priority split 1,000 requests by weight (3:1), every request answered', async (t) => {
  const a = await channel(1, 64);
  const b = await channel(1, 64);
  await model('rt/weighted', [
    { channel: a, weight: 3 },
    { channel: b, weight: 1 },
  ]);
  const results = await inParallel(1000, 16, () => chat('rt/weighted'));
  t.deepEqual(statuses(results), { 200: 1000 });
  t.is(a.calls() + b.calls(), 1000, 'one upstream call per request');
  // binomial(1000, 0.75): sd ≈ 13.7; 5 sd either way
  t.true(Math.abs(a.calls() - 750) < 69, `${a.calls()} on the weight-3 route, ${b.calls()} on the weight-1 route`);
});

test.serial('higher priority first: a lower-priority route gets nothing while the higher one serves', async (t) => {
  const main = await channel(1, 16);
  const spare = await channel(1, 16);
  await model('rt/priority', [
    { channel: spare, priority: 0, weight: 100 },
    { channel: main, priority: 10, weight: 1 },
  ]);
  const results = await inParallel(60, 6, () => chat('rt/priority'));
  t.deepEqual(statuses(results), { 200: 60 });
  t.is(main.calls(), 60);
  t.is(spare.calls(), 0);
  const routes = await routesOf('rt/priority');
  t.deepEqual(
    routes.map((r) => [r.channel_id, r.priority, r.weight, r.state]),
    [
      [main.id, 10, 1, 'healthy'],
      [spare.id, 0, 100, 'healthy'],
    ],
    'listed in trying order',
  );
});

test.serial('a 429 storm on one channel moves every request to the other, with no client error', async (t) => {
  const storm = await channel(2, 8, { fail: { status: 429, retryAfter: '30' } });
  const calm = await channel(2, 8);
  await model('rt/storm', [{ channel: storm }, { channel: calm }]);
  const first = await inParallel(50, 10, () => chat('rt/storm'));
  t.deepEqual(statuses(first), { 200: 50 });
  const stormCalls = storm.calls();
  t.true(stormCalls >= 1 && stormCalls <= 20, `${stormCalls} calls reached the storm before its tokens cooled`);
  const second = await inParallel(150, 10, () => chat('rt/storm'));
  t.deepEqual(statuses(second), { 200: 150 });
  t.is(storm.calls(), stormCalls, 'nothing more was sent to the cooling channel');
  t.is(calm.calls(), 200, 'every answer came from the other channel');

  const cooling = await routeOn('rt/storm', storm);
  t.is(cooling.state, 'cooling');
  const until = Date.parse(cooling.cooling_until!) - Date.now();
  t.true(until > 20_000 && until <= 30_000, `cooling for ${until} ms more`);
  t.regex(cooling.last_error ?? '', /429/);
  t.is((await routeOn('rt/storm', calm)).state, 'healthy');
  t.regex(
    await metrics(),
    new RegExp(`eastx_route_state\\{model="rt/storm",channel="${storm.id}",upstream_model="mock-gpt",state="cooling"\\} 1`),
  );
});

test.serial('503 only when every route cools, with Retry-After = the soonest return; then no upstream call', async (t) => {
  const slow = await channel(1, 4, { fail: { status: 429, retryAfter: '9' } });
  const soon = await channel(1, 4, { fail: { status: 429, retryAfter: '3' } });
  await model('rt/all-cooling', [
    { channel: slow, priority: 1 },
    { channel: soon, priority: 0 },
  ]);
  const first = await chat('rt/all-cooling');
  t.is(first.res.status, 503);
  t.is(first.json.error?.code, 'upstream_unavailable');
  const retryAfter = Number(first.res.headers.get('retry-after'));
  t.true(retryAfter >= 1 && retryAfter <= 3, `Retry-After ${retryAfter}: the route back first`);
  t.is(slow.calls() + soon.calls(), 2, 'each route tried once');
  const second = await chat('rt/all-cooling');
  t.is(second.res.status, 503);
  t.true(Number(second.res.headers.get('retry-after')) <= 3);
  t.is(slow.calls() + soon.calls(), 2, 'answered without an upstream call');
  t.deepEqual(
    (await routesOf('rt/all-cooling')).map((r) => r.state),
    ['cooling', 'cooling'],
  );

  // every token disabled: the route says so, and 503 comes without Retry-After
  const off = await channel(1, 4);
  await model('rt/disabled', [{ channel: off }]);
  const listed = await bed.admin.call<{ data: Array<{ id: number; tokens: Array<{ id: number }> }> }>('GET', '/admin/api/channels');
  await bed.admin.call('PATCH', `/admin/api/tokens/${listed.data.find((c) => c.id === off.id)!.tokens[0].id}`, { status: 'disabled' });
  t.is((await routeOn('rt/disabled', off)).state, 'disabled');
  const none = await chat('rt/disabled');
  t.is(none.res.status, 503);
  t.is(none.res.headers.get('retry-after'), null);
});

test.serial('a stream whose first channel fails before its first chunk is served whole by the second', async (t) => {
  const first = await channel(2, 8);
  const second = await channel(1, 8);
  await model('rt/stream', [
    { channel: first, priority: 1 },
    { channel: second, priority: 0 },
  ]);
  const failures: Array<[string, Partial<Behavior>]> = [
    ['500', { fail: { status: 500, message: 'upstream exploded' } }],
    ['connection reset', { reset: true }],
    [`no first byte within ${FIRST_BYTE_MS} ms`, { hang: true }],
  ];
  for (const [what, behavior] of failures) {
    for (const secret of first.secrets) bed.mock.setBehavior(secret, behavior);
    const [before1, before2] = [first.calls(), second.calls()];
    const content = `tell me about ${what}`;
    const res = await fetch(`${bed.gateway.urls[turn++ % 2]}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'rt/stream',
        stream: true,
        stream_options: { include_usage: true },
        messages: [{ role: 'user', content }],
        max_tokens: 50,
      }),
    });
    t.is(res.status, 200, what);
    const stream = new StreamReader(res);
    await stream.readToEnd();
    t.is(stream.content, `Hello! You said: ${content}`, `${what}: the whole answer`);
    t.is(stream.error, undefined, what);
    t.true(stream.text.trimEnd().endsWith('data: [DONE]'), what);
    t.regex(stream.text, /"usage":\{"prompt_tokens":\d+/, `${what}: the usage chunk`);
    t.true(first.calls() > before1, `${what}: the first channel was tried`);
    t.is(second.calls(), before2 + 1, `${what}: served by the second channel`);
    record(keyId, res);
    const requestId = res.headers.get('x-request-id')!;
    const row = await until(
      async () => (await bed.admin.usage(`key_id=${keyId}`)).data.find((r) => r.request_id === requestId),
      (r) => r !== undefined,
    );
    t.is(row?.estimated, false, `${what}: billed from the upstream's usage`);
  }
  await until(
    () => first.secrets.reduce((n, s) => n + bed.mock.stats(s).closedEarly, 0),
    (n) => n >= 1,
  );
  t.true(
    first.secrets.some((s) => bed.mock.stats(s).closedEarly >= 1),
    'the silent attempt was aborted',
  );
  for (const secret of first.secrets) bed.mock.setBehavior(secret, {});
});

test.serial('a channel answering 500s goes unhealthy, only the probe calls it, and it comes back once it answers', async (t) => {
  const sick = await channel(1, 4, { fail: { status: 500, message: 'backend down' } });
  const well = await channel(1, 16);
  await model('rt/health', [{ channel: sick }, { channel: well }]);
  const content = 'real traffic';
  let sent = 0;
  const state = await until(
    async () => {
      const { res } = await chat('rt/health', { content });
      t.is(res.status, 200, 'the client never sees the failures');
      sent++;
      return (await routeOn('rt/health', sick)).state;
    },
    (s) => s === 'unhealthy',
    40_000,
  );
  t.is(state, 'unhealthy', `unhealthy after ${sent} requests`);
  const route = await routeOn('rt/health', sick);
  t.truthy(route.unhealthy_since);
  t.regex(route.last_error ?? '', /HTTP 500: backend down/);
  t.regex(await metrics(), new RegExp(`eastx_channel_state\\{channel="${sick.id}",state="unhealthy"\\} 1`));

  // probes take 1.5 s each here, three times the probe interval: run one at a time, they never overlap
  bed.mock.setBehavior(sick.secrets[0], { latencyMs: 1_500, fail: { status: 500, message: 'still down' } });
  const seen = bed.mock.requests.length;
  const during = await inParallel(40, 5, () => chat('rt/health', { content }));
  t.deepEqual(statuses(during), { 200: 40 });
  await until(
    () => bed.mock.requests.slice(seen).filter((r) => r.secret === sick.secrets[0]).length,
    (n) => n >= 2,
  );
  const toSick = bed.mock.requests.slice(seen).filter((r) => r.secret === sick.secrets[0]);
  t.true(toSick.length >= 2, `${toSick.length} probes`);
  t.true(
    toSick.every((r) => JSON.stringify(r.body).includes('"ping"') && (r.body as { max_tokens?: number }).max_tokens === 1),
    'only minimal probe requests reach the unhealthy channel',
  );
  t.is(bed.mock.stats(sick.secrets[0]).maxInFlight, 1, 'one probe at a time across both workers');
  t.regex((await routeOn('rt/health', sick)).last_error ?? '', /probe: HTTP 500: still down/);

  bed.mock.setBehavior(sick.secrets[0], {});
  const back = await until(
    async () => (await routeOn('rt/health', sick)).state,
    (s) => s === 'healthy',
    60_000,
  );
  t.is(back, 'healthy', 'a probe that got an answer brought the channel back');
  t.is((await routeOn('rt/health', sick)).unhealthy_since, null);
  t.regex(await metrics(), new RegExp(`eastx_channel_state\\{channel="${sick.id}",state="healthy"\\} 1`));
  const after = bed.mock.requests.length;
  const split = await inParallel(60, 4, () => chat('rt/health', { content }));
  t.deepEqual(statuses(split), { 200: 60 });
  const real = bed.mock.requests
    .slice(after)
    .filter((r) => r.secret === sick.secrets[0] && JSON.stringify(r.body).includes(content)).length;
  t.true(real > 5, `the recovered channel takes its share again (${real} of 60)`);
});

test.serial('saturated routes: requests wait for a free token on either route, never above any max_concurrency', async (t) => {
  const a = await channel(1, 2, { latencyMs: 300 });
  const b = await channel(1, 2, { latencyMs: 300 });
  await model('rt/saturated', [{ channel: a }, { channel: b }]);
  const results = await inParallel(30, 30, () => chat('rt/saturated'));
  t.deepEqual(statuses(results), { 200: 30 });
  t.true(a.calls() > 0 && b.calls() > 0, `${a.calls()} / ${b.calls()}`);
  t.is(bed.mock.stats(a.secrets[0]).maxInFlight, 2);
  t.is(bed.mock.stats(b.secrets[0]).maxInFlight, 2);
});

test.serial(
  'allowed_models: 403 model_not_allowed at the model step, /v1/models lists only allowed ones, under concurrent requests',
  async (t) => {
    const c = await channel(1, 32);
    for (const id of ['rt/allow-a', 'rt/allow-b', 'rt/deny-c']) await model(id, [{ channel: c }]);
    const key = await bed.admin.key(userId, { rpm_limit: 10_000, allowed_models: ['rt/allow-*', 'rt/exact'] });
    t.deepEqual((key as unknown as { allowed_models: string[] }).allowed_models, ['rt/allow-*', 'rt/exact']);
    const ids = ['rt/allow-a', 'rt/allow-b', 'rt/deny-c'];
    const results = await inParallel(90, 15, (i) =>
      chat(ids[i % 3], { key: key.key, keyId: key.id }).then((r) => ({ ...r, id: ids[i % 3] })),
    );
    for (const r of results) {
      if (r.id === 'rt/deny-c') {
        t.is(r.res.status, 403);
        t.like(r.json.error, { code: 'model_not_allowed', type: 'permission_error', param: 'model' });
        t.is(r.res.headers.get('x-ratelimit-limit-requests'), null, 'refused before the RPM step');
      } else t.is(r.res.status, 200);
    }
    t.is(c.calls(), 60, 'no refused request reached the upstream');

    const get = (path: string, web: number) =>
      fetch(`${bed.gateway.urls[web]}${path}`, { headers: { authorization: `Bearer ${key.key}` } });
    for (const web of [0, 1]) {
      const list = (await (await get('/v1/models', web)).json()) as { data: Array<{ id: string }> };
      t.deepEqual(
        list.data.map((m) => m.id).filter((id) => id.startsWith('rt/')),
        ['rt/allow-a', 'rt/allow-b'],
      );
      t.is((await get('/v1/models/rt/allow-a', web)).status, 200);
      const hidden = await get('/v1/models/rt/deny-c', web);
      t.is(hidden.status, 404);
      t.is(((await hidden.json()) as ErrorJson).error?.code, 'model_not_found');
    }
    t.is((await chat('rt/unknown', { key: key.key, keyId: key.id })).json.error?.code, 'model_not_found', 'an unknown model stays 404');

    // a change reaches every web process on its next request
    await bed.admin.call('PATCH', `/admin/api/keys/${key.id}`, { allowed_models: ['rt/deny-c'] });
    for (const web of [0, 1]) {
      t.is((await chat('rt/deny-c', { key: key.key, keyId: key.id, web })).res.status, 200);
      t.is((await chat('rt/allow-a', { key: key.key, keyId: key.id, web })).json.error?.code, 'model_not_allowed');
    }
    await bed.admin.call('PATCH', `/admin/api/keys/${key.id}`, { allowed_models: null });
    for (const web of [0, 1]) t.is((await chat('rt/allow-b', { key: key.key, keyId: key.id, web })).res.status, 200, 'null lifts the list');
  },
);

test.serial('max_concurrent_requests: exact across both web processes; refusals are 429 with Retry-After: 1 and not counted', async (t) => {
  const c = await channel(1, 50, { latencyMs: 1_000 });
  await model('rt/slow', [{ channel: c }]);
  const key = await bed.admin.key(userId, { rpm_limit: 40, max_concurrent_requests: 3 });
  const as = { key: key.key, keyId: key.id };
  const results = await inParallel(20, 20, () => chat('rt/slow', as));
  const ok = results.filter((r) => r.res.status === 200).length;
  const refused = results.filter((r) => r.res.status === 429);
  t.true(ok >= 3, `${ok} answered`);
  t.is(ok + refused.length, 20);
  t.true(bed.mock.stats(c.secrets[0]).maxInFlight <= 3, 'never more than 3 of the key in flight');
  for (const r of refused) {
    t.is(r.json.error?.code, 'rate_limit_exceeded');
    t.is(r.res.headers.get('retry-after'), '1');
  }
  const next = await chat('rt/slow', as);
  t.is(next.res.status, 200);
  t.is(Number(next.res.headers.get('x-ratelimit-remaining-requests')), 40 - (ok + 1), 'the refused requests were not counted');

  // a request that fails frees its slot
  const broken = await channel(1, 8, { fail: { status: 500 } });
  await model('rt/broken', [{ channel: broken }]);
  for (let i = 0; i < 5; i++) t.not((await chat('rt/broken', as)).res.status, 429);

  // so does a client that disconnects, long before the slot's 15 s lease would run out
  bed.mock.setBehavior(c.secrets[0], { chunkDelayMs: 300, reply: Array(100).fill('slow').join(' ') });
  const controllers = [0, 1, 2].map(() => new AbortController());
  const streams = await Promise.all(
    controllers.map((controller, i) =>
      fetch(`${bed.gateway.urls[i % 2]}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'rt/slow', stream: true, messages: [{ role: 'user', content: 'go' }], max_tokens: 200 }),
        signal: controller.signal,
      }),
    ),
  );
  t.deepEqual(
    streams.map((s) => s.status),
    [200, 200, 200],
  );
  for (const res of streams) {
    const reader = new StreamReader(res);
    await reader.readUntil(() => reader.chunks >= 1);
    record(key.id, res); // a stream cut short is billed for what it produced
  }
  t.is((await chat('rt/slow', as)).res.status, 429, 'three streams hold the three slots');
  for (const controller of controllers) controller.abort();
  bed.mock.setBehavior(c.secrets[0], {});
  const freed = await until(
    async () => (await chat('rt/slow', as)).res.status,
    (status) => status === 200,
    8_000,
  );
  t.is(freed, 200, 'the slots of the clients that left were freed');

  // a stream that runs to its end frees its slot when its response ends (it is relayed detached from the
  // middleware chain): more streams one after another than the key has slots all answer
  for (let i = 0; i < 5; i++) {
    const res = await chat('rt/slow', {
      ...as,
      init: { body: JSON.stringify({ model: 'rt/slow', stream: true, messages: [{ role: 'user', content: 'go' }] }) },
    });
    t.is(res.res.status, 200, `stream ${i} after ${i} finished ones`);
  }
});

test.serial('audit and concurrency: every answer charged exactly once, nothing held, no token above its max_concurrency', async (t) => {
  await auditPasses(t);
  await until(
    async () => (await bed.admin.getUser(userId)).held_usd,
    (h) => h === '0',
  );
  t.is((await bed.admin.getUser(userId)).held_usd, '0');
  for (const [key, requestIds] of answered) {
    const rows = (await ledgerOf(key)).filter((r) => r.kind === 'charge');
    const charged = new Set(rows.map((r) => r.request_id as string));
    t.is(rows.length, charged.size, `key ${key}: one charge per request id`);
    t.deepEqual(
      [...requestIds].filter((id) => !charged.has(id)),
      [],
      `key ${key}: every answer charged`,
    );
    t.is(rows.length, requestIds.size, `key ${key}: nothing charged that was not answered`);
  }
  for (const { secret, max } of tokens)
    t.true(bed.mock.stats(secret).maxInFlight <= max, `${secret}: ${bed.mock.stats(secret).maxInFlight} > ${max}`);
});

test.serial('a web process that dies while holding concurrency slots: they free themselves within the lease time', async (t) => {
  const c = await channel(1, 50, { latencyMs: 8_000 });
  await model('rt/orphan', [{ channel: c }]);
  const key = await bed.admin.key(userId, { rpm_limit: 1000, max_concurrent_requests: 2 });
  const doomed = [0, 1].map(() => chat('rt/orphan', { key: key.key, keyId: key.id, web: 1 }).catch(() => 'gone'));
  await until(
    () => bed.mock.stats(c.secrets[0]).inFlight,
    (n) => n === 2,
  );
  bed.mock.setBehavior(c.secrets[0], {});
  t.is((await chat('rt/orphan', { key: key.key, keyId: key.id, web: 0 })).res.status, 429, 'both slots are taken');
  await bed.gateway.webs[1].kill('SIGKILL');
  await Promise.all(doomed);
  const freed = await until(
    async () => (await chat('rt/orphan', { key: key.key, keyId: key.id, web: 0 })).res.status,
    (s) => s === 200,
    30_000,
  );
  t.is(freed, 200);
  await auditPasses(t);
});

/** Every ledger row of a key (the usage API answers at most 1,000 per page, newest first). */
async function ledgerOf(key: number): Promise<Array<Record<string, unknown>>> {
  const rows: Array<Record<string, unknown>> = [];
  for (;;) {
    const before = rows.length > 0 ? `&before_id=${rows.at(-1)!.id}` : '';
    const page = (await bed.admin.usage(`key_id=${key}&limit=1000${before}`)).data;
    rows.push(...page);
    if (page.length < 1000) return rows;
  }
}

async function auditPasses(t: ExecutionContext) {
  const run = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
    execFile(process.execPath, ['dist/src/cli.js', 'audit'], { cwd: ROOT, env: { ...process.env, ...bed.env } }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    ),
  );
  t.is(run.code, 0, `audit: ${run.stderr}`);
}
