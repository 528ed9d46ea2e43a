import test from 'ava';
import { type Bed, startBed } from './helpers/bed.js';
import { newCustomer } from './helpers/customer.js';
import { freePort } from './helpers/gateway.js';
import { readSse } from './helpers/money.js';
import { assertFitsOpenAI } from './helpers/openapi.js';

// Every error the gateway can answer, HTTP and SSE, checked against OpenAI's published ErrorResponse schema.
let bed: Bed;
let apiKey: string;
const MODEL = 'err/chat';
const SECRET = 'tok-err-secret';

test.before(async () => {
  bed = await startBed('error_schema', { env: { BODY_LIMIT_BYTES: '4096', METRICS_TOKEN: 'metrics-err' } });
  const { admin, mock } = bed;
  const channel = await admin.channel('err-openai', 'openai', `${mock.url}/v1`);
  await admin.token(channel.id, SECRET, 4);
  await admin.model(MODEL, { channel_id: channel.id, upstream_model: 'mock-gpt', input_price_per_1m: 1, output_price_per_1m: 2 });
  const closed = await admin.channel('err-closed', 'openai', `http://127.0.0.1:${await freePort()}/v1`);
  await admin.token(closed.id, 'tok-closed', 1);
  await admin.model('err/unreachable', { channel_id: closed.id, upstream_model: 'x', input_price_per_1m: 1, output_price_per_1m: 2 });
  ({ apiKey } = await newCustomer(admin, 'err@example.com', '5'));
});

test.after.always(() => bed?.stop());

async function call(
  method: string,
  path: string,
  { key = apiKey as string | null, body = undefined as unknown, raw = undefined as string | undefined } = {},
) {
  const res = await fetch(`${bed.url}${path}`, {
    method,
    headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), 'content-type': 'application/json' },
    body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  return { status: res.status, json: (await res.json()) as { error: { code: string; param: string | null } } };
}

const chat = (extra: Record<string, unknown> = {}, key: string | null = apiKey) =>
  call('POST', '/v1/chat/completions', { key, body: { model: MODEL, messages: [{ role: 'user', content: 'hi' }], ...extra } });

test.serial('every HTTP error answer fits ErrorResponse, with its SPEC §2 status and code', async (t) => {
  const poor = await newCustomer(bed.admin, 'poor@example.com', '0.000001');
  const capped = await newCustomer(bed.admin, 'capped@example.com', '5', { balance_cap_usd: '0.000001' });
  const limited = await newCustomer(bed.admin, 'limited@example.com', '5', { rpm_limit: 1 });
  const disabled = await newCustomer(bed.admin, 'disabled@example.com', '5');
  await bed.admin.call('PATCH', `/admin/api/keys/${disabled.keyId}`, { disabled: true });
  await call('GET', '/v1/models', { key: limited.apiKey });

  const cases: Array<[string, Promise<{ status: number; json: { error: { code: string; param: string | null } } }>, number, string]> = [
    ['no key', call('GET', '/v1/models', { key: null }), 401, 'missing_key'],
    ['unknown key', call('GET', '/v1/models', { key: 'sk-eastx-nope' }), 401, 'invalid_key'],
    ['disabled key', call('GET', '/v1/models', { key: disabled.apiKey }), 403, 'disabled'],
    ['unknown route', call('GET', '/v1/nope'), 404, 'not_found'],
    ['wrong method', call('DELETE', '/v1/models'), 405, 'method_not_allowed'],
    ['not JSON', call('POST', '/v1/chat/completions', { raw: '{nope' }), 400, 'bad_request'],
    ['missing field', call('POST', '/v1/chat/completions', { body: { model: MODEL } }), 400, 'bad_request'],
    ['wrong endpoint', call('POST', '/v1/embeddings', { body: { model: MODEL, input: 'x' } }), 400, 'wrong_endpoint'],
    ['unknown model', chat({ model: 'err/none' }), 404, 'model_not_found'],
    ['too large', chat({ padding: 'x'.repeat(8192) }), 413, 'request_too_large'],
    ['rpm', call('GET', '/v1/models', { key: limited.apiKey }), 429, 'rate_limit_exceeded'],
    ['balance', chat({}, poor.apiKey), 402, 'insufficient_balance'],
    ['cap', chat({}, capped.apiKey), 402, 'cap_reached'],
    ['unreachable', chat({ model: 'err/unreachable' }), 502, 'upstream_unreachable'],
    ['admin without token', call('GET', '/admin/api/channels', { key: null }), 401, 'missing_key'],
    ['admin with a customer key', call('GET', '/admin/api/channels'), 401, 'invalid_key'],
    ['admin validation', call('POST', '/admin/api/users', { key: bed.env.ADMIN_TOKEN, body: { email: 3 } }), 400, 'bad_request'],
    ['admin missing row', call('GET', '/admin/api/users/999999', { key: bed.env.ADMIN_TOKEN }), 404, 'not_found'],
    ['metrics without token', call('GET', '/metrics', { key: null }), 401, 'missing_key'],
  ];
  for (const [what, answer, status, code] of cases) {
    const { status: got, json } = await answer;
    t.is(got, status, what);
    t.is(json.error?.code, code, what);
    assertFitsOpenAI(t, 'ErrorResponse', json, what);
  }
  const missing = await call('POST', '/v1/chat/completions', { body: { model: MODEL } });
  t.is(missing.json.error.param, 'messages', 'param names the offending field');
});

test.serial('upstream errors fit ErrorResponse too, extra fields included', async (t) => {
  bed.mock.setBehavior(SECRET, { fail: { status: 400, message: 'upstream says no', times: 1 } });
  const failed = await chat();
  t.is(failed.status, 502);
  t.is((failed.json.error as unknown as { upstream_status: number }).upstream_status, 400);
  assertFitsOpenAI(t, 'ErrorResponse', failed.json, '502 upstream_error');
  bed.mock.setBehavior(SECRET, { fail: { status: 429, retryAfter: '30' } });
  const cooling = await chat();
  t.is(cooling.status, 503);
  assertFitsOpenAI(t, 'ErrorResponse', cooling.json, '503 upstream_unavailable');
  bed.mock.setBehavior(SECRET, {});
});

test.serial('the SSE error event of a stream cut short fits ErrorResponse', async (t) => {
  const fresh = await bed.admin.channel('err-stream', 'openai', `${bed.mock.url}/v1`);
  await bed.admin.token(fresh.id, 'tok-err-stream', 2);
  await bed.admin.model('err/stream', { channel_id: fresh.id, upstream_model: 'mock-gpt', input_price_per_1m: 1, output_price_per_1m: 2 });
  bed.mock.setBehavior('tok-err-stream', { midStreamResetAfter: 2, chunkDelayMs: 10 });
  const res = await fetch(`${bed.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'err/stream', stream: true, messages: [{ role: 'user', content: 'tell me a long story' }] }),
  });
  t.is(res.status, 200);
  const events = readSse(await res.text());
  const last = events.at(-1);
  t.truthy(last?.error, 'the stream ends with an error event');
  assertFitsOpenAI(t, 'ErrorResponse', last, 'SSE error event');
});
