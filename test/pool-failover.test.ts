import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { encode } from 'gpt-tokenizer';
import type { Behavior } from '../src/mock/upstream.js';
import { type Bed, startBed } from './helpers/bed.js';
import { newCustomer } from './helpers/customer.js';
import { freePort, logsOf } from './helpers/gateway.js';
import { StreamReader } from './helpers/stream.js';
import { until } from './helpers/wait.js';

// Failover, cooldowns, the §2 upstream errors and cancellation, through web + 2 worker processes.
const CHAT_DEADLINE_MS = 8_000;
let bed: Bed;
let userId: number;
let apiKey: string;
let keyId: number;

test.before(async () => {
  bed = await startBed('pool_failover', { env: { CHAT_DEADLINE_MS: String(CHAT_DEADLINE_MS) }, webs: 2, workers: 2 });
  ({ userId, keyId, apiKey } = await newCustomer(bed.admin, 'failover@example.com', '50', { rpm_limit: 10_000 }));
});

test.after.always(() => bed?.stop());

let channels = 0;
/** A channel of its own with one token per name (secrets unique to this run), and a model on it. */
async function channelWith(names: string[], behavior: Partial<Behavior> = {}, baseUrl = `${bed.mock.url}/v1`) {
  const n = ++channels;
  const channel = await bed.admin.channel(`failover-${n}`, 'openai', baseUrl);
  const tokens: Record<string, { id: number; secret: string }> = {};
  for (const name of names) {
    const secret = `${name}-${randomBytes(6).toString('hex')}`;
    tokens[name] = { id: (await bed.admin.token(channel.id, secret, 4, name)).id, secret };
    bed.mock.setBehavior(secret, behavior);
  }
  const model = `failover/m${n}`;
  await bed.admin.model(model, { channel_id: channel.id, upstream_model: 'mock-gpt', input_price_per_1m: 2, output_price_per_1m: 8 });
  return { channelId: channel.id, model, tokens };
}

type ErrorJson = { error?: { code: string; message: string; upstream_status?: number } };
async function chat(model: string, extra: Record<string, unknown> = {}, init: RequestInit = {}, base = bed.gateway.urls[0]) {
  const res = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 20, ...extra }),
    ...init,
  });
  return res;
}
async function chatJson(model: string) {
  const res = await chat(model);
  return { res, json: (await res.json()) as ErrorJson };
}

const held = async () => (await bed.admin.getUser(userId)).held_usd;
const ledgerRow = (requestId: string) =>
  until(
    async () => (await bed.admin.usage(`key_id=${keyId}`)).data.find((r) => r.request_id === requestId),
    (row) => row !== undefined,
  );

test.serial('429 with Retry-After: the request moves to the other token, the first is left alone until the cooldown ends', async (t) => {
  const { model, tokens } = await channelWith(['limited', 'spare']);
  const limited = tokens.limited.secret;
  bed.mock.setBehavior(limited, { fail: { status: 429, retryAfter: '4', times: 1 } });
  let hitAt = 0;
  for (let i = 0; i < 30 && bed.mock.stats(limited).calls === 0; i++) {
    const { res } = await chatJson(model);
    t.is(res.status, 200, 'the 429 never reaches the client');
    hitAt = Date.now();
  }
  t.is(bed.mock.stats(limited).calls, 1, 'the token picker reached the limited token');
  let during = 0;
  while (Date.now() < hitAt + 3_000) {
    t.is((await chatJson(model)).res.status, 200);
    during++;
  }
  t.true(during > 0);
  t.is(bed.mock.stats(limited).calls, 1, `no call on the cooling token during ${during} requests`);
  await sleep(hitAt + 4_200 - Date.now());
  for (let i = 0; i < 30 && bed.mock.stats(limited).calls === 1; i++) t.is((await chatJson(model)).res.status, 200);
  t.is(bed.mock.stats(limited).calls, 2, 'used again once the cooldown ended');
  t.is(await held(), '0');
});

test.serial(
  'every token 429 (Retry-After as an HTTP date) → 503 upstream_unavailable with Retry-After, then no upstream call while cooling',
  async (t) => {
    const retryAt = new Date(Math.ceil((Date.now() + 6_000) / 1000) * 1000).toUTCString();
    const { model, tokens } = await channelWith(['a', 'b'], { fail: { status: 429, retryAfter: retryAt } });
    const first = await chatJson(model);
    t.is(first.res.status, 503);
    t.is(first.json.error?.code, 'upstream_unavailable');
    const retryAfter = Number(first.res.headers.get('retry-after'));
    t.true(retryAfter >= 1 && retryAfter <= 7, `Retry-After ${retryAfter}`);
    t.is(bed.mock.stats(tokens.a.secret).calls + bed.mock.stats(tokens.b.secret).calls, 2, 'each token tried once');
    const second = await chatJson(model);
    t.is(second.res.status, 503);
    t.truthy(second.res.headers.get('retry-after'));
    t.is(bed.mock.stats(tokens.a.secret).calls + bed.mock.stats(tokens.b.secret).calls, 2, 'answered at once, no upstream call');
    t.is(await held(), '0');
  },
);

test.serial(
  '500 everywhere → 502 upstream_error with upstream_status 500, also for the request whose own 5xx cools the last token; then 503',
  async (t) => {
    const { model, tokens } = await channelWith(['x', 'y'], { fail: { status: 500, message: 'boom' } });
    // the third request's failures put both tokens in cooldown, yet it saw the upstream's error: 502 as well
    for (let i = 1; i <= 3; i++) {
      const { res, json } = await chatJson(model);
      t.is(res.status, 502, `request ${i}`);
      t.is(json.error?.code, 'upstream_error');
      t.is(json.error?.upstream_status, 500);
      t.regex(json.error!.message, /boom/);
      t.is(bed.mock.stats(tokens.x.secret).calls, i, 'both tokens tried');
      t.is(bed.mock.stats(tokens.y.secret).calls, i);
    }
    // later requests find every token already cooling: the channel as a whole is unavailable now
    for (const calls of [3, 3]) {
      const cooled = await chatJson(model);
      t.is(cooled.res.status, 503);
      t.is(cooled.json.error?.code, 'upstream_unavailable');
      t.truthy(cooled.res.headers.get('retry-after'));
      t.is(bed.mock.stats(tokens.x.secret).calls, calls);
      t.is(bed.mock.stats(tokens.y.secret).calls, calls);
    }
    t.is(await held(), '0');
  },
);

test.serial('a 429 whose Retry-After is years away cools the token for an hour at most; re-enabling it clears the cooldown', async (t) => {
  for (const retryAfter of ['999999999', 'Fri, 31 Dec 9999 23:59:59 GMT']) {
    const { model, tokens } = await channelWith(['far'], { fail: { status: 429, retryAfter, times: 1 } });
    const cooled = await chatJson(model);
    t.is(cooled.res.status, 503, retryAfter);
    const seconds = Number(cooled.res.headers.get('retry-after'));
    t.true(seconds > 3_500 && seconds <= 3_600, `Retry-After ${seconds} for ${retryAfter}`);
    t.is((await chatJson(model)).res.status, 503, 'still cooling');
    await bed.admin.call('PATCH', `/admin/api/tokens/${tokens.far.id}`, { status: 'disabled' });
    await bed.admin.call('PATCH', `/admin/api/tokens/${tokens.far.id}`, { status: 'active' });
    t.is((await chatJson(model)).res.status, 200, 're-enabled: tried again at once');
  }
  const { model, tokens } = await channelWith(['active'], { fail: { status: 429, retryAfter: '600', times: 1 } });
  t.is((await chatJson(model)).res.status, 503);
  await bed.admin.call('PATCH', `/admin/api/tokens/${tokens.active.id}`, { status: 'active' });
  t.is((await chatJson(model)).res.status, 200, 'an active token PATCHed active is tried again too');
});

test.serial('re-enabling a token forgets its 5xx in a row: it takes three new ones to cool it', async (t) => {
  const { model, tokens } = await channelWith(['flaky'], { fail: { status: 500, times: 2 } });
  t.is((await chatJson(model)).res.status, 502);
  t.is((await chatJson(model)).res.status, 502);
  await bed.admin.call('PATCH', `/admin/api/tokens/${tokens.flaky.id}`, { status: 'active' });
  bed.mock.setBehavior(tokens.flaky.secret, { fail: { status: 500, times: 1 } });
  t.is((await chatJson(model)).res.status, 502);
  t.is((await chatJson(model)).res.status, 200, 'one failure since it was re-enabled: not cooling');
});

test.serial('a closed port → 502 upstream_unreachable', async (t) => {
  const { model } = await channelWith(['closed'], {}, `http://127.0.0.1:${await freePort()}/v1`);
  const { res, json } = await chatJson(model);
  t.is(res.status, 502);
  t.is(json.error?.code, 'upstream_unreachable');
  t.is(await held(), '0');
});

test.serial('401 from upstream disables the token (admin API shows it) and the request is served by another token', async (t) => {
  const { channelId, model, tokens } = await channelWith(['revoked', 'good']);
  bed.mock.setBehavior(tokens.revoked.secret, { fail: { status: 401 } });
  for (let i = 0; i < 30 && bed.mock.stats(tokens.revoked.secret).calls === 0; i++) t.is((await chatJson(model)).res.status, 200);
  t.is(bed.mock.stats(tokens.revoked.secret).calls, 1);
  const listed = await bed.admin.call<{
    data: Array<{ id: number; tokens: Array<{ id: number; status: string; disabled_reason: string | null }> }>;
  }>('GET', '/admin/api/channels');
  const channelTokens = listed.data.find((c) => c.id === channelId)!.tokens;
  const revoked = channelTokens.find((tk) => tk.id === tokens.revoked.id)!;
  t.is(revoked.status, 'disabled');
  t.regex(revoked.disabled_reason ?? '', /401/);
  t.is(channelTokens.find((tk) => tk.id === tokens.good.id)!.status, 'active');
  for (let i = 0; i < 5; i++) t.is((await chatJson(model)).res.status, 200);
  t.is(bed.mock.stats(tokens.revoked.secret).calls, 1, 'a disabled token gets no more calls');
  const output = (await logsOf(bed.gateway.workers, (lines) => lines.some((l) => l.includes('token disabled')))).join('\n');
  t.regex(output, /token disabled/);
  t.false(output.includes(tokens.revoked.secret), 'the secret is not logged');

  await bed.admin.call('PATCH', `/admin/api/tokens/${tokens.good.id}`, { status: 'disabled' });
  const none = await chatJson(model);
  t.is(none.res.status, 503);
  t.is(none.json.error?.code, 'upstream_unavailable');
  t.is(none.res.headers.get('retry-after'), null, 'no Retry-After when every token is disabled');
});

test.serial('an upstream that does not answer before CHAT_DEADLINE_MS → 504 upstream_timeout, not billed', async (t) => {
  const { model, tokens } = await channelWith(['slow'], { hang: true });
  const { res, json } = await chatJson(model);
  t.is(res.status, 504);
  t.is(json.error?.code, 'upstream_timeout');
  await until(
    () => bed.mock.stats(tokens.slow.secret).closedEarly,
    (n) => n === 1,
  );
  t.is(bed.mock.stats(tokens.slow.secret).closedEarly, 1, 'the upstream call was aborted');
  t.is(await held(), '0');
});

test.serial('a stream client that disconnects aborts the upstream call within a second and pays for what was streamed', async (t) => {
  const reply = Array.from({ length: 150 }, (_, i) => `word${i}`).join(' ');
  const { model, tokens } = await channelWith(['stream'], { chunkDelayMs: 100, reply });
  const secret = tokens.stream.secret;
  const controller = new AbortController();
  const res = await chat(model, { stream: true, max_tokens: 250 }, { signal: controller.signal });
  t.is(res.status, 200);
  const requestId = res.headers.get('x-request-id')!;
  const stream = new StreamReader(res);
  await stream.readUntil(() => stream.chunks >= 8);
  controller.abort();
  const abortedAt = Date.now();
  await until(
    () => bed.mock.stats(secret).closedEarly,
    (n) => n === 1,
    5_000,
  );
  const stats = bed.mock.stats(secret);
  t.is(stats.closedEarly, 1);
  t.true(stats.lastClosedAt! - abortedAt < 1_000, `upstream closed ${stats.lastClosedAt! - abortedAt} ms after the client left`);

  const row = await ledgerRow(requestId);
  t.truthy(row, 'the produced part is billed');
  t.is(row!.estimated, true);
  const received = encode(stream.content).length;
  const billed = row!.completion_tokens as number;
  t.true(billed >= received && billed <= received + 6, `billed ${billed} completion tokens, the client received ${received}`);
  t.is(await until(held, (h) => h === '0'), '0');
});

test.serial('a non-stream client that disconnects aborts the upstream call and is not billed', async (t) => {
  const { model, tokens } = await channelWith(['patient'], { latencyMs: 5_000 });
  const controller = new AbortController();
  const pending = chat(model, {}, { signal: controller.signal }).catch(() => 'aborted');
  await bed.mock.waitForRequests(bed.mock.requests.length + 1, 5_000);
  await until(
    () => bed.mock.stats(tokens.patient.secret).calls,
    (n) => n === 1,
  );
  controller.abort();
  const abortedAt = Date.now();
  t.is(await pending, 'aborted');
  await until(
    () => bed.mock.stats(tokens.patient.secret).closedEarly,
    (n) => n === 1,
    5_000,
  );
  t.true(bed.mock.stats(tokens.patient.secret).lastClosedAt! - abortedAt < 1_000);
  t.is(await until(held, (h) => h === '0'), '0');
  const rows = (await bed.admin.usage(`key_id=${keyId}`)).data.filter((r) => r.model === model);
  t.is(rows.length, 0);
});

test.serial('the web process holding a stream dies → the worker notices nobody listens and aborts the upstream call', async (t) => {
  const { model, tokens } = await channelWith(['orphan'], { chunkDelayMs: 100, reply: Array(200).fill('tick').join(' ') });
  const res = await chat(model, { stream: true, max_tokens: 250 }, {}, bed.gateway.urls[1]);
  const stream = new StreamReader(res);
  await stream.readUntil(() => stream.chunks >= 3);
  const requestId = res.headers.get('x-request-id')!;
  await bed.gateway.webs[1].kill('SIGKILL');
  await until(
    () => bed.mock.stats(tokens.orphan.secret).closedEarly,
    (n) => n === 1,
    10_000,
  );
  t.is(bed.mock.stats(tokens.orphan.secret).closedEarly, 1, 'upstream call aborted');
  const row = await ledgerRow(requestId);
  t.is(row?.estimated, true, 'billed for what was produced, estimated');
  t.true((row!.completion_tokens as number) < 200);
  t.is(await until(held, (h) => h === '0'), '0');
});
