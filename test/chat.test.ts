import test from 'ava';
import type OpenAI from 'openai';
import { countChatPromptTokens } from '../src/billing/estimate.js';
import { type Bed, startBed } from './helpers/bed.js';
import { newCustomer, postJson } from './helpers/customer.js';
import { costOf, nano, readSse } from './helpers/money.js';
import { collectToolCalls } from './helpers/stream.js';
import { until } from './helpers/wait.js';

// Web and worker run as separate OS processes: every chat call really crosses the BullMQ queue.
let bed: Bed;
let userId: number;
let apiKey: string;
let client: OpenAI;
const MODEL = 'test/chat-1.5';
const PRICES = { input: 1.5, output: 6 };
const UPSTREAM_SECRET = 'tok-chat-secret-1';

test.before(async () => {
  bed = await startBed('chat', { env: { BODY_LIMIT_BYTES: String(256 * 1024) } });
  const { admin, mock } = bed;
  const channel = await admin.channel('mock-openai', 'openai', `${mock.url}/v1`);
  await admin.token(channel.id, UPSTREAM_SECRET, 8);
  await admin.model(MODEL, {
    channel_id: channel.id,
    upstream_model: 'mock-gpt',
    input_price_per_1m: PRICES.input,
    output_price_per_1m: PRICES.output,
  });
  await admin.model('test/plain', {
    channel_id: channel.id,
    upstream_model: 'mock-plain',
    vision: false,
    tools: false,
    input_price_per_1m: 1,
    output_price_per_1m: 1,
  });
  await admin.model('test/soon', { channel_id: channel.id, upstream_model: 'x', status: 'coming_soon' });
  await admin.model('test/off', { channel_id: channel.id, upstream_model: 'x', status: 'disabled' });
  await admin.model('test/embed', {
    channel_id: channel.id,
    upstream_model: 'mock-embed',
    modality: 'embedding',
    input_price_per_1m: 0.02,
  });
  ({ userId, apiKey, client } = await newCustomer(admin, 'chat@example.com', '5'));
});

test.after.always(() => bed?.stop());

const ask = (content: string) => [{ role: 'user' as const, content }];
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const lastSent = () => bed.mock.requests.at(-1)!.body as Record<string, any>;

const post = (path: string, body: unknown, key = apiKey, headers: Record<string, string> = {}) =>
  postJson<{ error?: { code: string; message: string; type: string } }>(`${bed.url}${path}`, key, body, headers);

test.serial('non-stream chat: OpenAI shape, upstream usage, exact cost in header, usage.cost and the ledger', async (t) => {
  const before = nano((await bed.admin.getUser(userId)).balance_usd);
  const { data, response } = await client.chat.completions.create({ model: MODEL, messages: ask('ping') }).withResponse();
  t.is(data.object, 'chat.completion');
  t.is(data.model, MODEL);
  t.is(data.choices[0].message.content, 'Hello! You said: ping');
  const usage = data.usage!;
  t.true(usage.prompt_tokens > 0 && usage.completion_tokens > 0);
  const cost = costOf(PRICES, usage.prompt_tokens, usage.completion_tokens);
  t.is(nano(response.headers.get('x-eastx-cost-usd')!), cost);
  t.is(nano((usage as unknown as { cost: number }).cost), cost);

  const after = nano((await bed.admin.getUser(userId)).balance_usd);
  t.is(before - after, cost);
  const requestId = response.headers.get('x-request-id');
  const rows = (await bed.admin.usage(`user_id=${userId}`)).data.filter((r) => r.request_id === requestId);
  t.is(rows.length, 1);
  t.is(rows[0].kind, 'charge');
  t.is(rows[0].model, MODEL);
  t.is(nano(rows[0].amount_usd as string), -cost);
  t.is((await bed.admin.getUser(userId)).held_usd, '0');

  const sent = { ...bed.mock.requests.at(-1)!, body: lastSent() };
  t.is(sent.body.model, 'mock-gpt', 'the upstream gets its own model name');
  t.is(sent.headers.authorization, `Bearer ${UPSTREAM_SECRET}`);
  t.is(sent.body.max_tokens, 256, "without max_tokens the model's cap (affordable) is sent upstream");
});

test.serial('stream without include_usage: chunks reassemble, one finish_reason, no usage chunk, [DONE]', async (t) => {
  const res = await fetch(`${bed.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, messages: ask('stream me'), stream: true, max_tokens: 50 }),
  });
  t.is(res.status, 200);
  t.regex(res.headers.get('content-type')!, /^text\/event-stream/);
  t.truthy(res.headers.get('x-request-id'));
  const text = await res.text();
  t.true(text.endsWith('data: [DONE]\n\n'));
  const chunks = readSse(text);
  t.true(chunks.every((c) => c.object === 'chat.completion.chunk' && c.model === MODEL));
  t.is(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join(''), 'Hello! You said: stream me');
  t.deepEqual(chunks.flatMap((c) => c.choices.map((ch: { finish_reason: string | null }) => ch.finish_reason)).filter(Boolean), ['stop']);
  t.false(chunks.some((c) => 'usage' in c || c.choices.length === 0));
  const upstreamBody = lastSent();
  t.deepEqual(upstreamBody.stream_options, { include_usage: true }, 'the gateway always asks the upstream for usage');
});

test.serial('stream with include_usage through the SDK: final usage chunk with exact cost, debited once', async (t) => {
  const before = nano((await bed.admin.getUser(userId)).balance_usd);
  const stream = await client.chat.completions.create({
    model: MODEL,
    messages: ask('count me'),
    stream: true,
    stream_options: { include_usage: true },
    max_completion_tokens: 40,
  });
  let text = '';
  let usage: (OpenAI.CompletionUsage & { cost?: number }) | undefined;
  let last: OpenAI.ChatCompletionChunk | undefined;
  const usageBefore: unknown[] = [];
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? '';
    if (chunk.usage) usage = chunk.usage;
    else usageBefore.push(chunk.usage);
    last = chunk;
  }
  t.is(text, 'Hello! You said: count me');
  t.deepEqual(last!.choices, []);
  t.true(usageBefore.length > 1 && usageBefore.every((u) => u === null), 'as OpenAI: `"usage": null` on every earlier chunk');
  t.truthy(usage);
  const cost = costOf(PRICES, usage!.prompt_tokens, usage!.completion_tokens);
  t.is(nano(usage!.cost!), cost);
  t.is(before - nano((await bed.admin.getUser(userId)).balance_usd), cost);
});

test.serial('a streamed tool call reassembles to valid JSON and the tool turn round-trips', async (t) => {
  const tools: OpenAI.ChatCompletionTool[] = [
    {
      type: 'function',
      function: {
        name: 'lookup',
        description: 'look something up',
        parameters: { type: 'object', properties: { query: { type: 'string' } } },
      },
    },
  ];
  const stream = await client.chat.completions.create({ model: MODEL, messages: ask('weather in Paris'), tools, stream: true });
  const { calls, finish } = await collectToolCalls(stream);
  t.is(finish, 'tool_calls');
  t.is(calls.length, 1);
  t.is(calls[0].name, 'lookup');
  t.deepEqual(JSON.parse(calls[0].args), { query: 'weather in Paris' });

  const followUp = await client.chat.completions.create({
    model: MODEL,
    tools,
    messages: [
      ...ask('weather in Paris'),
      {
        role: 'assistant',
        content: null,
        tool_calls: [{ id: calls[0].id!, type: 'function', function: { name: 'lookup', arguments: calls[0].args } }],
      },
      { role: 'tool', tool_call_id: calls[0].id!, content: 'sunny, 21C' },
    ],
  });
  t.is(followUp.choices[0].message.content, 'Tool result received: sunny, 21C');
  const sent = lastSent();
  t.is(sent.messages[1].tool_calls[0].id, calls[0].id);
  t.deepEqual(sent.tools, tools);
});

test.serial('image_url parts and unknown fields pass through to an OpenAI upstream untouched', async (t) => {
  const image = { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } };
  const { res } = await post('/v1/chat/completions', {
    model: MODEL,
    messages: [{ role: 'user', content: [{ type: 'text', text: 'what is this?' }, image] }],
    max_tokens: 20,
    logit_bias: { '50256': -100 },
    eastx_unknown_field: { nested: [1, 2] },
  });
  t.is(res.status, 200);
  const sent = lastSent();
  t.deepEqual(sent.messages[0].content[1], image);
  t.deepEqual(sent.eastx_unknown_field, { nested: [1, 2] });
  t.deepEqual(sent.logit_bias, { '50256': -100 });
  t.is(sent.max_tokens, 20);
});

test.serial('GET /v1/models lists active models only; ids with / and . resolve raw and %2F-encoded', async (t) => {
  const list = await client.models.list();
  const ids = list.data.map((m) => m.id);
  t.true(ids.includes(MODEL));
  t.false(ids.includes('test/soon'));
  t.false(ids.includes('test/off'));
  const entry = list.data.find((m) => m.id === MODEL) as unknown as Record<string, unknown>;
  t.is(entry.input_price_per_1m, 1.5);
  t.is(entry.output_price_per_1m, 6);
  t.is(entry.modality, 'chat');
  t.is(typeof entry.created, 'number');
  const one = await client.models.retrieve(MODEL);
  t.is(one.id, MODEL);
  const raw = await fetch(`${bed.url}/v1/models/${MODEL}`, { headers: { authorization: `Bearer ${apiKey}` } });
  t.is(raw.status, 200);
  t.is(((await raw.json()) as { id: string }).id, MODEL);
  t.truthy(raw.headers.get('x-ratelimit-limit-requests'));
  for (const id of ['test/soon', 'test/off', 'nope']) {
    const res = await fetch(`${bed.url}/v1/models/${encodeURIComponent(id)}`, { headers: { authorization: `Bearer ${apiKey}` } });
    t.is(res.status, 404);
    t.is(((await res.json()) as { error: { code: string } }).error.code, 'model_not_found');
  }
});

test.serial('every error this path can produce has the SPEC §2 shape, and none of them is billed', async (t) => {
  const before = await bed.admin.getUser(userId);
  const ledgerBefore = (await bed.admin.usage(`user_id=${userId}`)).data.length;
  const body = { model: MODEL, messages: ask('hi') };
  const expectError = async (
    p: Promise<{ res: Response; json: { error?: { code: string; message: string; type: string } } }>,
    status: number,
    code: string,
    type: string,
    message?: RegExp,
  ) => {
    const { res, json } = await p;
    t.is(res.status, status, `${code}: ${JSON.stringify(json)}`);
    t.is(json.error?.code, code);
    t.is(json.error?.type, type);
    t.truthy(res.headers.get('x-request-id'));
    t.regex(res.headers.get('content-type') ?? '', /application\/json/);
    if (message) t.regex(json.error!.message, message);
  };
  const noAuth = fetch(`${bed.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify(body) }).then(async (res) => ({
    res,
    json: (await res.json()) as never,
  }));
  await expectError(noAuth, 401, 'missing_key', 'authentication_error');
  await expectError(post('/v1/chat/completions', body, ''), 401, 'missing_key', 'authentication_error');
  const basic = fetch(`${bed.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: 'Basic abc' }, body: '{}' }).then(
    async (res) => ({ res, json: (await res.json()) as never }),
  );
  await expectError(basic, 401, 'missing_key', 'authentication_error');
  await expectError(post('/v1/chat/completions', body, 'sk-eastx-not-a-real-key'), 401, 'invalid_key', 'authentication_error');
  await expectError(post('/v1/chat/completions', body, 'sk-other-prefix'), 401, 'invalid_key', 'authentication_error');
  await expectError(post('/v1/chat/completions', '{not json'), 400, 'bad_request', 'invalid_request_error', /JSON/);
  await expectError(post('/v1/chat/completions', { model: MODEL }), 400, 'bad_request', 'invalid_request_error', /messages/);
  await expectError(post('/v1/chat/completions', { messages: ask('x') }), 400, 'bad_request', 'invalid_request_error', /model/);
  await expectError(
    post('/v1/chat/completions', { model: MODEL, messages: [{ role: 'wizard', content: 'x' }] }),
    400,
    'bad_request',
    'invalid_request_error',
    /messages\.0\.role/,
  );
  // content OpenAI requires, and parts it cannot read, are refused here rather than billed for an empty prompt
  for (const [messages, field] of [
    [[{ role: 'user' }], 'messages.0.content'],
    [
      [
        { role: 'system', content: null },
        { role: 'user', content: 'x' },
      ],
      'messages.0.content',
    ],
    [[{ role: 'user', content: [] }], 'messages.0.content'],
    [[{ role: 'user', content: [{ type: 'text' }] }], 'messages.0.content.0.text'],
    [[{ role: 'user', content: [{ type: 'image_url', image_url: 'http://x/y.png' }] }], 'messages.0.content.0.image_url.url'],
  ] as const) {
    const answer = await post('/v1/chat/completions', { model: MODEL, messages });
    t.is(answer.res.status, 400, JSON.stringify(messages));
    t.is((answer.json.error as { param?: string } | undefined)?.param, field);
  }
  await expectError(
    post('/v1/chat/completions', { ...body, temperature: 'hot' }),
    400,
    'bad_request',
    'invalid_request_error',
    /temperature/,
  );
  await expectError(post('/v1/chat/completions', { ...body, max_tokens: -3 }), 400, 'bad_request', 'invalid_request_error', /max_tokens/);
  await expectError(post('/v1/chat/completions', { ...body, stream: 'yes' }), 400, 'bad_request', 'invalid_request_error', /stream/);
  await expectError(post('/v1/chat/completions', { ...body, model: 'nope' }), 404, 'model_not_found', 'invalid_request_error');
  await expectError(post('/v1/chat/completions', { ...body, model: 'test/soon' }), 404, 'model_not_found', 'invalid_request_error');
  await expectError(post('/v1/chat/completions', { ...body, model: 'test/embed' }), 400, 'wrong_endpoint', 'invalid_request_error');
  await expectError(
    post('/v1/chat/completions', {
      model: 'test/plain',
      messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'http://x/y.png' } }] }],
    }),
    400,
    'bad_request',
    'invalid_request_error',
    /image/,
  );
  await expectError(
    post('/v1/chat/completions', { ...body, filler: 'x'.repeat(300 * 1024) }),
    413,
    'request_too_large',
    'invalid_request_error',
  );
  await expectError(post('/v1/no/such/route', body), 404, 'not_found', 'invalid_request_error');
  const wrongMethod = fetch(`${bed.url}/v1/chat/completions`, { headers: { authorization: `Bearer ${apiKey}` } }).then(async (res) => ({
    res,
    json: (await res.json()) as never,
  }));
  await expectError(wrongMethod, 405, 'method_not_allowed', 'invalid_request_error');

  const after = await bed.admin.getUser(userId);
  t.is(after.balance_usd, before.balance_usd);
  t.is(after.held_usd, '0');
  t.is((await bed.admin.usage(`user_id=${userId}`)).data.length, ledgerBefore);
  t.is(
    bed.mock.requests.filter((r) => (r.body as { messages?: Array<{ content?: unknown }> } | undefined)?.messages?.[0]?.content === 'hi')
      .length,
    0,
    'no failed request reached the upstream',
  );
});

test.serial(
  'key states: disabled → 403 disabled, expired → 403 expired, revoked → 401 invalid_key, each on the very next request',
  async (t) => {
    const key = await bed.admin.key(userId, { name: 'states' });
    const body = { model: MODEL, messages: ask('hi'), max_tokens: 5 };
    t.is((await post('/v1/chat/completions', body, key.key)).res.status, 200);
    await bed.admin.call('PATCH', `/admin/api/keys/${key.id}`, { disabled: true });
    const disabled = await post('/v1/chat/completions', body, key.key);
    t.is(disabled.res.status, 403);
    t.is(disabled.json.error?.code, 'disabled');
    await bed.admin.call('PATCH', `/admin/api/keys/${key.id}`, { disabled: false, expires_at: new Date(Date.now() - 1000).toISOString() });
    const expired = await post('/v1/chat/completions', body, key.key);
    t.is(expired.res.status, 403);
    t.is(expired.json.error?.code, 'expired');
    await bed.admin.call('PATCH', `/admin/api/keys/${key.id}`, { expires_at: null });
    t.is((await post('/v1/chat/completions', body, key.key)).res.status, 200);
    await bed.admin.call('DELETE', `/admin/api/keys/${key.id}`);
    const revoked = await post('/v1/chat/completions', body, key.key);
    t.is(revoked.res.status, 401);
    t.is(revoked.json.error?.code, 'invalid_key');
  },
);

test.serial('402 insufficient_balance for an account that cannot afford a minimal answer; nothing held or billed', async (t) => {
  const poor = await bed.admin.user('poor@example.com');
  const key = await bed.admin.key(poor.id);
  const { res, json } = await post('/v1/chat/completions', { model: MODEL, messages: ask('hi') }, key.key);
  t.is(res.status, 402);
  t.is(json.error?.code, 'insufficient_balance');
  t.is(json.error?.type, 'billing_error');
  t.truthy(res.headers.get('x-ratelimit-limit-requests'), '402 passed the RPM step');
  const user = await bed.admin.getUser(poor.id);
  t.is(user.balance_usd, '0');
  t.is(user.held_usd, '0');
});

test.serial('without max_tokens, a small balance caps the output sent upstream at what it can afford', async (t) => {
  const modest = await bed.admin.user('modest@example.com', '0.0005');
  const key = await bed.admin.key(modest.id);
  const { res } = await post('/v1/chat/completions', { model: MODEL, messages: ask('hi') }, key.key);
  t.is(res.status, 200);
  const sent = lastSent();
  t.true(sent.max_tokens >= 16 && sent.max_tokens < 256, `max_tokens sent: ${sent.max_tokens}`);
  const held = costOf(PRICES, 0, sent.max_tokens);
  t.true(held <= nano('0.0005'));
});

test.serial('upstream failures become the SPEC §2 upstream errors and cost nothing', async (t) => {
  const before = await bed.admin.getUser(userId);
  bed.mock.setBehavior(UPSTREAM_SECRET, { fail: { status: 400, message: 'bad thing', times: 1 } });
  const bad = await post('/v1/chat/completions', { model: MODEL, messages: ask('x'), max_tokens: 5 });
  t.is(bad.res.status, 502);
  t.is(bad.json.error?.code, 'upstream_error');
  t.is((bad.json.error as unknown as { upstream_status: number }).upstream_status, 400);
  t.regex(bad.json.error!.message, /bad thing/);
  t.truthy(bad.res.headers.get('x-ratelimit-limit-requests'));
  bed.mock.setBehavior(UPSTREAM_SECRET, {});
  const after = await bed.admin.getUser(userId);
  t.is(after.balance_usd, before.balance_usd);
  t.is(after.held_usd, '0');
});

test.serial('a started stream silent for over 15 s gets a keep-alive comment between its chunks', async (t) => {
  bed.mock.setBehavior(UPSTREAM_SECRET, { chunkDelayMs: 20_000 });
  const abort = new AbortController();
  const res = await fetch(`${bed.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, messages: ask('slow chunks'), stream: true, max_tokens: 20 }),
    signal: abort.signal,
  });
  bed.mock.setBehavior(UPSTREAM_SECRET, {});
  t.is(res.status, 200);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  let firstDataAt = 0;
  while (!text.includes(': keep-alive')) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
    if (!firstDataAt && text.includes('data: ')) firstDataAt = Date.now();
  }
  const silentFor = Date.now() - firstDataAt;
  abort.abort();
  t.true(text.startsWith('data: '), text.slice(0, 40));
  t.regex(text, /^data: [^\n]*\n\n(data: [^\n]*\n\n)*: keep-alive\n\n$/);
  t.true(silentFor >= 14_500 && silentFor < 19_000, `the keep-alive came ${silentFor} ms after the chunks`);
});

test.serial('a stream whose first chunk takes over 10 s starts with 200 and a keep-alive comment, then the chunks', async (t) => {
  bed.mock.setBehavior(UPSTREAM_SECRET, { latencyMs: 11_000 });
  const started = Date.now();
  const res = await fetch(`${bed.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, messages: ask('slow start'), stream: true, max_tokens: 20 }),
  });
  const headersAfter = Date.now() - started;
  bed.mock.setBehavior(UPSTREAM_SECRET, {});
  t.is(res.status, 200);
  t.true(headersAfter >= 9_500, `the response waited for the first chunk up to 10 s (started after ${headersAfter} ms)`);
  const text = await res.text();
  t.true(text.startsWith(': keep-alive\n\n'), text.slice(0, 40));
  t.is(
    readSse(text)
      .map((c) => c.choices[0]?.delta?.content ?? '')
      .join(''),
    'Hello! You said: slow start',
  );
  t.true(text.endsWith('data: [DONE]\n\n'));
});

test.serial(
  'an upstream that drops mid-stream: the client gets what was produced, then the SSE error; billed for it, marked estimated',
  async (t) => {
    bed.mock.setBehavior(UPSTREAM_SECRET, { midStreamResetAfter: 2, chunkDelayMs: 20 });
    const before = nano((await bed.admin.getUser(userId)).balance_usd);
    const res = await fetch(`${bed.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, messages: ask('this answer will be cut short'), stream: true, max_tokens: 50 }),
    });
    const requestId = res.headers.get('x-request-id');
    const text = await res.text();
    bed.mock.setBehavior(UPSTREAM_SECRET, {});
    t.is(res.status, 200);
    const events = text
      .split('\n\n')
      .filter((e) => e.startsWith('data: '))
      .map((e) => e.slice(6));
    t.false(events.includes('[DONE]'));
    const last = JSON.parse(events.at(-1)!) as { error?: { code: string; type: string } };
    t.is(last.error?.code, 'upstream_error');
    const streamed = events.slice(0, -1).map((e) => JSON.parse(e) as { choices: Array<{ delta: { content?: string } }> });
    const received = streamed.map((c) => c.choices[0]?.delta?.content ?? '').join('');
    t.true(received.length > 0, 'some output reached the client before the drop');

    let row: Record<string, unknown> | undefined;
    for (let i = 0; i < 50 && !row; i++) {
      row = (await bed.admin.usage(`user_id=${userId}`)).data.find((r) => r.request_id === requestId);
      if (!row) await new Promise((r) => setTimeout(r, 100));
    }
    t.truthy(row, 'one charge row for what was produced');
    t.is(row!.estimated, true);
    t.true((row!.completion_tokens as number) > 0);
    // the prompt as the gateway counts it, not the hold's upper bound (margins for the worst case)
    t.is(row!.prompt_tokens, countChatPromptTokens({ messages: ask('this answer will be cut short') }));
    t.is(before - nano((await bed.admin.getUser(userId)).balance_usd), -nano(row!.amount_usd as string));
    t.is((await bed.admin.getUser(userId)).held_usd, '0');
  },
);

test.serial('a client that leaves after the role chunk, before any output, pays for the prompt the upstream read', async (t) => {
  bed.mock.setBehavior(UPSTREAM_SECRET, { chunkDelayMs: 5_000 });
  try {
    const controller = new AbortController();
    const res = await fetch(`${bed.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, messages: ask('I will not wait'), stream: true }),
      signal: controller.signal,
    });
    const requestId = res.headers.get('x-request-id');
    const reader = res.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    t.regex(first, /"role":"assistant"/);
    t.notRegex(first, /"content":"[^"]/, 'no output yet');
    controller.abort();
    const row = await until(
      async () => (await bed.admin.usage(`user_id=${userId}`)).data.find((r) => r.request_id === requestId),
      (r) => r !== undefined,
    );
    t.like(row, { estimated: true, completion_tokens: 0, prompt_tokens: countChatPromptTokens({ messages: ask('I will not wait') }) });
    t.is(
      await until(
        async () => (await bed.admin.getUser(userId)).held_usd,
        (h) => h === '0',
      ),
      '0',
    );
  } finally {
    bed.mock.setBehavior(UPSTREAM_SECRET, {});
  }
});

test.serial('an upstream that drops a stream before any output: the role chunk, then the SSE error; nothing is charged', async (t) => {
  bed.mock.setBehavior(UPSTREAM_SECRET, { midStreamResetAfter: 0 });
  const before = await bed.admin.getUser(userId);
  const res = await fetch(`${bed.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, messages: ask('no answer will come'), stream: true }),
  });
  const requestId = res.headers.get('x-request-id');
  const events = (await res.text())
    .split('\n\n')
    .filter((e) => e.startsWith('data: '))
    .map((e) => JSON.parse(e.slice(6)) as { choices?: Array<{ delta: { role?: string; content?: string } }>; error?: { code: string } });
  bed.mock.setBehavior(UPSTREAM_SECRET, {});
  t.is(res.status, 200, 'the role chunk started the stream');
  t.deepEqual(
    events.map((e) => e.error?.code ?? e.choices?.[0]?.delta.role),
    ['assistant', 'upstream_error'],
  );
  t.is(events[0].choices?.[0]?.delta.content ?? '', '');
  // settled: the hold is gone, and no ledger row, no debit
  const after = await until(
    () => bed.admin.getUser(userId),
    (u) => u.held_usd === '0',
  );
  t.is(after.balance_usd, before.balance_usd);
  t.false((await bed.admin.usage(`user_id=${userId}`)).data.some((r) => r.request_id === requestId));
});
