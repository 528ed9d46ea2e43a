import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import test, { type ExecutionContext } from 'ava';
import { Redis } from 'ioredis';
import { type Bed, startBed } from './helpers/bed.js';
import { newCustomer, postJson } from './helpers/customer.js';
import { logsOf } from './helpers/gateway.js';

// An upstream of its own that answers what no real provider should: answers too large to hold, valid JSON of
// the wrong shape, usage that is not token counts, error messages echoing the key. Each channel's one token
// names the answer it gets. The gateway answers each with a contract answer (never a 500, never a charge for
// an error), and its one worker goes on serving.
const ANSWER_MAX_BYTES = 1024 * 1024;
/** The most a hostile answer sends before it hangs: a cap that does not hold shows as a hang, not as a worker gone. */
const HOSTILE_BYTES = 64 * 1024 * 1024;

type Hostile = (req: IncomingMessage, res: ServerResponse, secret: string) => void | Promise<void>;

let bed: Bed;
let upstream: Server;
let upstreamUrl: string;
let apiKey: string;
let userId: number;
const behaviors = new Map<string, Hostile>();
const calls = new Map<string, number>();

test.before(async () => {
  bed = await startBed('hostile_upstream', { env: { UPSTREAM_ANSWER_MAX_BYTES: String(ANSWER_MAX_BYTES) } });
  upstream = createServer((req, res) => {
    const secret = String(req.headers['x-api-key'] ?? req.headers.authorization?.replace(/^Bearer /, '') ?? '');
    calls.set(secret, (calls.get(secret) ?? 0) + 1);
    req.resume();
    req.on('end', () => void behaviors.get(secret)?.(req, res, secret));
  });
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as { port: number }).port}`;
  const { admin, mock } = bed;
  const healthy = await admin.channel('healthy', 'openai', `${mock.url}/v1`);
  await admin.token(healthy.id, 'healthy-secret', 8);
  await admin.model('healthy/chat', { channel_id: healthy.id, upstream_model: 'mock-gpt', input_price_per_1m: 2, output_price_per_1m: 8 });
  ({ apiKey, userId } = await newCustomer(bed.admin, 'hostile@example.com', '50'));
});

test.after.always(async () => {
  await bed?.stop();
  upstream?.closeAllConnections();
  upstream?.close();
});

/**
 * A model on a channel of `type` at the hostile upstream whose one token gets `hostile`; its secret is long,
 * as real keys are, so that its ends are recognisable.
 */
async function hostileModel(name: string, hostile: Hostile, options: { type?: 'openai' | 'anthropic'; modality?: string } = {}) {
  const type = options.type ?? 'openai';
  const channel = await bed.admin.channel(name, type, type === 'openai' ? `${upstreamUrl}/v1` : upstreamUrl);
  const secret = `evil-SEC${randomBytes(12).toString('hex')}zzzz`;
  behaviors.set(secret, hostile);
  await bed.admin.token(channel.id, secret, 4);
  const model = `${name}/model`;
  await bed.admin.model(model, {
    channel_id: channel.id,
    upstream_model: 'hostile',
    input_price_per_1m: 2,
    output_price_per_1m: 8,
    ...(options.modality ? { modality: options.modality } : {}),
  });
  return { model, secret, channelId: channel.id };
}

/** Writes `head`, then filler up to HOSTILE_BYTES as fast as the gateway reads, then hangs with the answer unfinished. */
async function endless(res: ServerResponse, status: number, contentType: string, head: string) {
  res.writeHead(status, { 'content-type': contentType });
  res.write(head);
  const filler = Buffer.alloc(64 * 1024, 'a');
  for (let sent = 0; sent < HOSTILE_BYTES && !res.destroyed; sent += filler.length) {
    if (!res.write(filler)) await Promise.race([once(res, 'drain'), once(res, 'close')]);
  }
}

const json = (status: number, body: string) => (_req: IncomingMessage, res: ServerResponse) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(body);
};

const sse = (events: string[]) => (_req: IncomingMessage, res: ServerResponse) => {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  res.end(events.map((e) => `data: ${e}\n\n`).join(''));
};

type ErrorBody = { error?: { code: string; message: string; upstream_status?: number } };

/** A request with a bound on its wait: a gateway that hangs fails the test instead of stalling it. */
const chat = (model: string, extra: Record<string, unknown> = {}, path = '/v1/chat/completions') =>
  fetch(`${bed.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 50, ...extra }),
    signal: AbortSignal.timeout(20_000),
  });

async function errorOf(res: Response): Promise<ErrorBody['error']> {
  const text = await res.text();
  // a stream that started carries its error as its last event
  const last = res.headers.get('content-type')?.includes('event-stream') ? (text.trim().split('\n\n').at(-1) ?? '').slice(6) : text;
  return (JSON.parse(last) as ErrorBody).error;
}

/** Nothing billed or held for the account since `before`; the one worker still serves a plain request. */
async function uncharged(t: ExecutionContext, before: string) {
  const account = await bed.admin.getUser(userId);
  t.is(account.balance_usd, before, 'nothing charged');
  t.is(Number(account.held_usd), 0, 'nothing held');
  const next = await chat('healthy/chat');
  t.is(next.status, 200, 'the worker survived and serves the next request');
  await next.arrayBuffer();
}

const balance = async () => (await bed.admin.getUser(userId)).balance_usd;

const ledgerRowOf = async (requestId: string | null) =>
  (await bed.admin.usage(`user_id=${userId}`)).data.find((row) => row.request_id === requestId);

test.serial('a non-stream answer past UPSTREAM_ANSWER_MAX_BYTES is cut: 502 too large, one upstream call, uncharged', async (t) => {
  const before = await balance();
  const { model, secret } = await hostileModel('huge-answer', (_req, res) =>
    endless(res, 200, 'application/json', '{"choices":[{"index":0,"message":{"role":"assistant","content":"'),
  );
  const res = await chat(model);
  t.is(res.status, 502);
  const error = await errorOf(res);
  t.is(error?.code, 'upstream_error');
  t.is(error?.upstream_status, 200);
  t.regex(error?.message ?? '', /too large/);
  t.is(calls.get(secret), 1, 'the job is not re-run');
  await uncharged(t, before);
});

test.serial('a 500 whose error body never ends: its first 64 KB give the 502, the rest is not read', async (t) => {
  const before = await balance();
  const { model } = await hostileModel('huge-error', (_req, res) => endless(res, 500, 'text/plain', 'upstream exploded: '));
  const res = await chat(model);
  t.is(res.status, 502);
  const error = await errorOf(res);
  t.is(error?.code, 'upstream_error');
  t.is(error?.upstream_status, 500);
  t.regex(error?.message ?? '', /^upstream exploded: a+$/);
  await uncharged(t, before);
});

test.serial('a stream line past 16 MiB is cut: 502 too large before the stream started, uncharged', async (t) => {
  const before = await balance();
  const { model } = await hostileModel('huge-line', (_req, res) =>
    endless(res, 200, 'text/event-stream', 'data: {"choices":[{"index":0,"delta":{"content":"'),
  );
  const res = await chat(model, { stream: true });
  t.is(res.status, 502);
  const error = await errorOf(res);
  t.is(error?.code, 'upstream_error');
  t.regex(error?.message ?? '', /too large/);
  await uncharged(t, before);
});

for (const [name, body] of [
  ['null', 'null'],
  ['a string', '"hello"'],
  ['an array', '[1,2]'],
  ['choices not an array', '{"choices":"x","usage":5}'],
  ['a choice not an object', '{"choices":[7]}'],
  ['a tool call null', '{"choices":[{"index":0,"message":{"role":"assistant","content":"x","tool_calls":[null]}}]}'],
]) {
  test.serial(`a 200 whose JSON is ${name}: 502 malformed upstream answer, uncharged`, async (t) => {
    const before = await balance();
    const { model } = await hostileModel(`shape-${name.replace(/\W+/g, '-')}`, json(200, body));
    const res = await chat(model);
    t.is(res.status, 502);
    const error = await errorOf(res);
    t.is(error?.code, 'upstream_error');
    t.is(error?.upstream_status, 200);
    t.regex(error?.message ?? '', /malformed upstream answer/);
    await uncharged(t, before);
  });
}

for (const [name, first] of [
  ['null', 'null'],
  ['choices not an array', '{"choices":"zz"}'],
  ['a tool call null', '{"choices":[{"index":0,"delta":{"tool_calls":[null]}}]}'],
]) {
  test.serial(`a stream whose first event is ${name}: 502 malformed upstream answer, uncharged`, async (t) => {
    const before = await balance();
    const { model } = await hostileModel(`stream-shape-${name.replace(/\W+/g, '-')}`, sse([first, '[DONE]']));
    const res = await chat(model, { stream: true });
    t.is(res.status, 502);
    const error = await errorOf(res);
    t.is(error?.code, 'upstream_error');
    t.regex(error?.message ?? '', /malformed upstream answer/);
    await uncharged(t, before);
  });
}

test.serial('Anthropic answers of the wrong shape (null message, null event): 502 malformed upstream answer', async (t) => {
  const before = await balance();
  const message = await hostileModel('anthropic-null', json(200, 'null'), { type: 'anthropic' });
  for (const path of ['/v1/chat/completions', '/v1/messages']) {
    const res = await chat(message.model, {}, path);
    t.is(res.status, 502, path);
    t.regex(JSON.stringify(await res.json()), /malformed upstream answer/, path);
  }
  const event = await hostileModel('anthropic-null-event', sse(['null']), { type: 'anthropic' });
  for (const path of ['/v1/chat/completions', '/v1/messages']) {
    const res = await chat(event.model, { stream: true }, path);
    t.is(res.status, 502, path);
    t.regex(await res.text(), /malformed upstream answer/, path);
  }
  await uncharged(t, before);
});

test.serial('embeddings whose items are not objects: 502 malformed upstream answer', async (t) => {
  const before = await balance();
  const { model } = await hostileModel('embed-null', json(200, '{"object":"list","data":[null],"usage":{"prompt_tokens":1}}'), {
    modality: 'embedding',
  });
  const { res, json: body } = await postJson<ErrorBody>(`${bed.url}/v1/embeddings`, apiKey, { model, input: 'hi' });
  t.is(res.status, 502);
  t.regex(body.error?.message ?? '', /malformed upstream answer/);
  await uncharged(t, before);
});

const answer = (usage: unknown) =>
  JSON.stringify({
    id: 'chatcmpl-1',
    object: 'chat.completion',
    created: 1,
    model: 'hostile',
    choices: [{ index: 0, message: { role: 'assistant', content: 'one two three' }, finish_reason: 'stop' }],
    usage,
  });

for (const [name, usage] of [
  ['negative', { prompt_tokens: -5, completion_tokens: -7, total_tokens: -12 }],
  ['strings', { prompt_tokens: '9', completion_tokens: '3', total_tokens: '12' }],
] as const) {
  test.serial(`usage with ${name} as token counts is no usage: counted by the gateway, charged, marked estimated`, async (t) => {
    const { model } = await hostileModel(`usage-${name}`, json(200, answer(usage)));
    const res = await chat(model);
    t.is(res.status, 200);
    const body = (await res.json()) as { usage: { prompt_tokens: number; completion_tokens: number; cost: number } };
    t.true(body.usage.prompt_tokens > 0 && body.usage.completion_tokens > 0, JSON.stringify(body.usage));
    t.true(body.usage.cost > 0);
    const row = await ledgerRowOf(res.headers.get('x-request-id'));
    t.truthy(row, 'a ledger row');
    t.is(row?.estimated, true);
    t.is(row?.completion_tokens, body.usage.completion_tokens);
  });
}

test.serial('an absurd token count (1e12) is clamped: served and charged, not a 500', async (t) => {
  const { model } = await hostileModel('usage-huge', json(200, answer({ prompt_tokens: 1e12, completion_tokens: 3, total_tokens: 1e12 })));
  const res = await chat(model);
  t.is(res.status, 200);
  const body = (await res.json()) as { usage: { prompt_tokens: number } };
  t.is(body.usage.prompt_tokens, 1_000_000_000);
  const row = await ledgerRowOf(res.headers.get('x-request-id'));
  t.is(row?.prompt_tokens, 1_000_000_000);
  t.is(row?.estimated, false);
});

/** The ends of `secret` that a provider shows when it echoes a key, and the masked form it uses. */
const piecesOf = (secret: string) => [secret.slice(0, 8), secret.slice(-4), '****'];

async function failedReasonOf(channelId: number, requestId: string | null): Promise<string | null> {
  const redis = new Redis(bed.env.REDIS_URL);
  try {
    return await redis.hget(`${bed.config.redisPrefix}:channel-${channelId}:${requestId}`, 'failedReason');
  } finally {
    redis.disconnect();
  }
}

for (const status of [400, 401]) {
  test.serial(`an upstream ${status} echoing the masked key: no piece of it reaches the client, the job or the logs`, async (t) => {
    const { model, secret, channelId } = await hostileModel(`echo-${status}`, (_req, res, key) =>
      json(
        status,
        JSON.stringify({
          error: {
            message: `Incorrect API key provided: ${key.slice(0, 8)}${'*'.repeat(16)}${key.slice(-4)}. You can find your API key at https://example.com; key ends ${key.slice(-4)}.`,
            type: 'invalid_request_error',
            code: 'invalid_api_key',
          },
        }),
      )(_req, res),
    );
    const res = await chat(model);
    t.true(res.status >= 500, String(res.status));
    const text = await res.text();
    const reason = (await failedReasonOf(channelId, res.headers.get('x-request-id'))) ?? '';
    const logs = (await logsOf([...bed.gateway.webs, ...bed.gateway.workers])).join('\n');
    for (const piece of piecesOf(secret)) {
      t.false(text.includes(piece), `client answer holds ${piece}: ${text}`);
      t.false(reason.includes(piece), `failed reason holds ${piece}: ${reason}`);
      t.false(logs.includes(piece), `logs hold ${piece}`);
    }
    if (status === 400) t.regex(text, /Incorrect API key provided: \[redacted\]/);
  });
}
