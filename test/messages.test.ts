import Anthropic from '@anthropic-ai/sdk';
import { jsonSchemaOutputFormat } from '@anthropic-ai/sdk/helpers/json-schema';
import test from 'ava';
import { countTokens as exactTokens } from 'gpt-tokenizer';
import { countTokens } from '../src/mock/text.js';
import { type Bed, startBed } from './helpers/bed.js';
import { newCustomer } from './helpers/customer.js';
import { costOf, costWithCache, nano } from './helpers/money.js';
import { until as pollUntil } from './helpers/wait.js';

// Anthropic's Messages API (SPEC §1b) with the real @anthropic-ai/sdk, through real web + worker processes, over
// an Anthropic channel (passed through), an OpenAI channel and a DashScope channel (translated).
type Json = Record<string, any>;
let bed: Bed;
let userId: number;
let keyId: number;
let apiKey: string;
let client: Anthropic;

const CLAUDE = 'msg/claude';
const GPT = 'msg/gpt';
const QWEN = 'msg/qwen';
const CLAUDE_PRICES = { input: 3, output: 15, cacheRead: 0.3, cacheWrite: 3.75 };
const GPT_PRICES = { input: 2, output: 8 };
const ANTHROPIC_SECRET = 'sk-ant-messages';
const OPENAI_SECRET = 'sk-openai-messages';

test.before(async () => {
  bed = await startBed('messages');
  const { admin, mock, url } = bed;
  const anthropic = await admin.channel('msg-anthropic', 'anthropic', mock.url);
  await admin.token(anthropic.id, ANTHROPIC_SECRET, 8);
  await admin.model(CLAUDE, {
    channel_id: anthropic.id,
    upstream_model: 'claude-sonnet-4-6',
    input_price_per_1m: CLAUDE_PRICES.input,
    output_price_per_1m: CLAUDE_PRICES.output,
    cache_read_price_per_1m: CLAUDE_PRICES.cacheRead,
    cache_write_price_per_1m: CLAUDE_PRICES.cacheWrite,
    max_output_tokens: 64_000, // as the real models: Claude Code's requests ask 32,000
  });
  const openai = await admin.channel('msg-openai', 'openai', `${mock.url}/v1`);
  await admin.token(openai.id, OPENAI_SECRET, 8);
  await admin.model(GPT, {
    channel_id: openai.id,
    upstream_model: 'gpt-4o',
    input_price_per_1m: 2,
    output_price_per_1m: 8,
    max_output_tokens: 16_384,
  });
  const dashscope = await admin.channel('msg-dashscope', 'dashscope', mock.url);
  await admin.token(dashscope.id, 'sk-dashscope-messages', 8);
  await admin.model(QWEN, {
    channel_id: dashscope.id,
    upstream_model: 'qwen-plus',
    input_price_per_1m: 1,
    output_price_per_1m: 2,
    max_output_tokens: 16_384,
  });
  ({ userId, keyId, apiKey } = await newCustomer(admin, 'messages@example.com', '10'));
  client = new Anthropic({ baseURL: url, apiKey, maxRetries: 0 });
});

test.after.always(() => bed?.stop());

const balance = async () => nano((await bed.admin.getUser(userId)).balance_usd);
const held = async () => (await bed.admin.getKey(keyId)).held_usd;
const ledgerRows = async () => (await bed.admin.usage(`user_id=${userId}`)).data as Json[];
const ledgerRow = async (requestId: string | null) => (await ledgerRows()).find((r) => r.request_id === requestId);
const lastUpstream = (path: string) => bed.mock.requests.filter((r) => r.path === path).at(-1)!;
/** The shared poll with this file's bounds: 5 s, every 50 ms. */
const until = <T>(read: () => Promise<T> | T, ok: (v: T) => boolean) => pollUntil(read, ok, 5_000, 50);

const WEATHER_TOOL = {
  name: 'get_weather',
  description: 'Current weather of a city',
  input_schema: { type: 'object' as const, properties: { city: { type: 'string' } }, required: ['city'] },
};

test.serial(
  'Anthropic channel, messages.create: the body goes up as is (model replaced, beta forwarded), the answer comes back, billed exactly',
  async (t) => {
    const before = await balance();
    const { data, response } = await client.messages
      .create(
        { model: CLAUDE, max_tokens: 64, system: 'You are terse.', messages: [{ role: 'user', content: 'ping' }], ...{ top_k: 3 } },
        { headers: { 'anthropic-beta': 'prompt-caching-2024-07-31' } },
      )
      .withResponse();
    t.is(data.type, 'message');
    t.is(data.model, CLAUDE);
    t.deepEqual(data.content, [{ type: 'text', text: 'Hello! You said: ping' }]);
    t.is(data.stop_reason, 'end_turn');
    const sent = lastUpstream('/v1/messages');
    t.is(sent.headers['x-api-key'], ANTHROPIC_SECRET);
    t.is(sent.headers['anthropic-beta'], 'prompt-caching-2024-07-31');
    t.truthy(sent.headers['anthropic-version']);
    t.like(sent.body as Json, { model: 'claude-sonnet-4-6', system: 'You are terse.', top_k: 3, max_tokens: 64, stream: false });
    t.is(data.usage.input_tokens, countTokens('You are terse.\nping'));
    const cost = costOf(CLAUDE_PRICES, data.usage.input_tokens, data.usage.output_tokens);
    t.is(nano(response.headers.get('x-eastx-cost-usd')!), cost);
    t.is(nano((data.usage as unknown as Json).cost), cost, 'usage.cost');
    t.is(before - (await balance()), cost);
    t.like(await ledgerRow(response.headers.get('x-request-id')), { prompt_tokens: data.usage.input_tokens, estimated: false });
  },
);

test.serial('OpenAI channel, messages.create: translated both ways, usage and cost in Anthropic’s terms', async (t) => {
  const before = await balance();
  const { data, response } = await client.messages
    .create({
      model: GPT,
      max_tokens: 64,
      system: [{ type: 'text', text: 'Be brief.', cache_control: { type: 'ephemeral' } }],
      messages: [{ role: 'user', content: [{ type: 'text', text: 'hello there' }] }],
      stop_sequences: ['STOP'],
      ...{ temperature: 0.2 },
    })
    .withResponse();
  t.is(data.model, GPT);
  t.regex(data.id, /^msg_/);
  t.is(data.content.length, 1);
  t.is(data.content[0].type, 'text');
  t.regex((data.content[0] as Anthropic.TextBlock).text, /hello there/);
  t.is(data.stop_reason, 'end_turn');
  const sent = lastUpstream('/v1/chat/completions').body as Json;
  t.like(sent, { model: 'gpt-4o', max_tokens: 64, stop: ['STOP'], temperature: 0.2, stream: false });
  t.deepEqual(sent.messages, [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'hello there' },
  ]);
  const cost = costOf(GPT_PRICES, data.usage.input_tokens, data.usage.output_tokens);
  t.true(data.usage.input_tokens > 0 && data.usage.output_tokens > 0);
  t.is(nano(response.headers.get('x-eastx-cost-usd')!), cost);
  t.truthy(response.headers.get('x-request-id'));
  t.is(before - (await balance()), cost);
});

for (const model of [CLAUDE, GPT]) {
  test.serial(`${model}: messages.stream text: Anthropic’s event sequence, final usage, exact billing`, async (t) => {
    const before = await balance();
    const stream = client.messages.stream({ model, max_tokens: 64, messages: [{ role: 'user', content: 'stream me please' }] });
    const types: string[] = [];
    stream.on('streamEvent', (event) => types.push(event.type));
    const message = await stream.finalMessage();
    const { response } = await stream.withResponse();
    t.is(message.model, model);
    t.regex((message.content[0] as Anthropic.TextBlock).text, /stream me please/);
    t.is(types[0], 'message_start');
    t.deepEqual(types.slice(-2), ['message_delta', 'message_stop']);
    t.true(types.includes('content_block_start') && types.includes('content_block_delta') && types.includes('content_block_stop'));
    t.is(message.stop_reason, 'end_turn');
    t.true(message.usage.input_tokens > 0 && message.usage.output_tokens > 0);
    const prices = model === CLAUDE ? CLAUDE_PRICES : GPT_PRICES;
    const cost = costOf(prices, message.usage.input_tokens, message.usage.output_tokens);
    t.is(before - (await balance()), cost);
    t.like(await ledgerRow(response.headers.get('x-request-id')), {
      prompt_tokens: message.usage.input_tokens,
      completion_tokens: message.usage.output_tokens,
      estimated: false,
    });
  });

  test.serial(`${model}: messages.stream tool round trip: tool_use with its streamed input → tool_result → the answer`, async (t) => {
    const question: Anthropic.MessageParam = { role: 'user', content: 'What is the weather in Paris?' };
    const first = await client.messages.stream({ model, max_tokens: 200, tools: [WEATHER_TOOL], messages: [question] }).finalMessage();
    t.is(first.stop_reason, 'tool_use');
    const call = first.content.find((b): b is Anthropic.ToolUseBlock => b.type === 'tool_use');
    t.truthy(call);
    t.is(call!.name, 'get_weather');
    t.is(typeof (call!.input as Json).city, 'string', 'the streamed input_json_delta fragments reassemble to the tool input');
    const second = await client.messages
      .stream({
        model,
        max_tokens: 200,
        tools: [WEATHER_TOOL],
        messages: [
          question,
          { role: 'assistant', content: first.content },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: call!.id, content: 'Sunny, 21°C' }] },
        ],
      })
      .finalMessage();
    t.is(second.stop_reason, 'end_turn');
    const text = second.content.find((b): b is Anthropic.TextBlock => b.type === 'text');
    t.regex(text?.text ?? '', /Sunny, 21°C/);
    if (model === GPT) {
      const sent = lastUpstream('/v1/chat/completions').body as Json;
      t.like(sent.messages[1], { role: 'assistant', tool_calls: [{ id: call!.id, type: 'function', function: { name: 'get_weather' } }] });
      t.deepEqual(sent.messages[2], { role: 'tool', tool_call_id: call!.id, content: 'Sunny, 21°C' });
    }
  });
}

test.serial(
  "blocks the chat translation drops (documents, search results, a tool result's images) still count for the hold and count_tokens",
  async (t) => {
    // $0.01 buys ~3,300 prompt tokens of CLAUDE: a 20,000-word document is far past it
    const { apiKey: lean } = await newCustomer(bed.admin, 'messages-lean@example.com', '0.01');
    const words = Array.from({ length: 20_000 }, (_, i) => `word${i % 97}`).join(' ');
    const ask = (block: Json) => ({
      model: CLAUDE,
      max_tokens: 16,
      messages: [{ role: 'user', content: [block, { type: 'text', text: 'Summarize' }] }],
    });
    const document = { type: 'document', source: { type: 'text', media_type: 'text/plain', data: words } };
    const searchResult = { type: 'search_result', source: 'https://example.com', title: 'x', content: [{ type: 'text', text: words }] };
    const unseen = { type: 'document', source: { type: 'url', url: 'https://example.com/report.pdf' } };
    for (const block of [{ type: 'text', text: words }, document, searchResult, unseen]) {
      const answer = await post('/v1/messages', ask(block), { 'x-api-key': lean });
      t.is(answer.status, 402, `${String(block.type)} ${JSON.stringify(answer.json).slice(0, 200)}`);
    }
    const small = await post('/v1/messages', ask({ ...document, source: { ...document.source, data: 'a short note' } }), {
      'x-api-key': lean,
    });
    t.is(small.status, 200, 'a small document is affordable');
    // the gateway's own count (a non-Anthropic channel) includes the document too
    const counted = (await post('/v1/messages/count_tokens', { ...ask(document), model: GPT })).json as { input_tokens: number };
    // o200k's exact count of the words: the gateway's count can only be higher (past its time budget it counts bytes)
    t.true(counted.input_tokens >= exactTokens(words), `count ${counted.input_tokens}`);
  },
);

test.serial(
  'countTokens: the Anthropic upstream counts on an Anthropic channel, the gateway elsewhere; billed nothing, counted by RPM',
  async (t) => {
    const before = await balance();
    const rowsBefore = (await ledgerRows()).length;
    const params = { system: 'You are terse.', messages: [{ role: 'user' as const, content: 'count me please' }] };
    const { data: claude, response } = await client.messages.countTokens({ model: CLAUDE, ...params }).withResponse();
    t.is(claude.input_tokens, countTokens('You are terse.\ncount me please'), 'the mock upstream’s count');
    t.is(lastUpstream('/v1/messages/count_tokens').headers['x-api-key'], ANTHROPIC_SECRET);
    t.is((lastUpstream('/v1/messages/count_tokens').body as Json).model, 'claude-sonnet-4-6');
    t.truthy(response.headers.get('x-ratelimit-remaining-requests'));
    const upstreamCounts = bed.mock.requests.filter((r) => r.path === '/v1/messages/count_tokens').length;
    const gpt = await client.messages.countTokens({ model: GPT, ...params });
    t.true(gpt.input_tokens >= countTokens('You are terse.count me please') && gpt.input_tokens < 60, `gateway count ${gpt.input_tokens}`);
    t.is(
      bed.mock.requests.filter((r) => r.path === '/v1/messages/count_tokens').length,
      upstreamCounts,
      'no upstream call for the own count',
    );
    t.is(await balance(), before);
    t.is((await ledgerRows()).length, rowsBefore);
    t.is(await held(), '0');
  },
);

test.serial(
  'DashScope channel: thinking in a stream becomes enable_thinking with its budget and comes back as a thinking block',
  async (t) => {
    const data = await client.messages
      .stream({
        model: QWEN,
        max_tokens: 4096,
        thinking: { type: 'enabled', budget_tokens: 2048 },
        messages: [{ role: 'user', content: 'hi qwen' }],
      })
      .finalMessage();
    t.is(data.model, QWEN);
    t.deepEqual(
      data.content.map((b) => b.type),
      ['thinking', 'text'],
    );
    t.regex((data.content[0] as Anthropic.ThinkingBlock).thinking, /Thinking it over/);
    t.regex((data.content.find((b) => b.type === 'text') as Anthropic.TextBlock).text, /hi qwen/);
    const sent = lastUpstream('/compatible-mode/v1/chat/completions').body as Json;
    t.like(sent, { model: 'qwen-plus', enable_thinking: true, thinking_budget: 2048, max_tokens: 4096, stream: true });
    // DashScope refuses thinking in non-streaming calls: a non-stream request goes without it
    const plain = await client.messages.create({
      model: QWEN,
      max_tokens: 4096,
      thinking: { type: 'enabled', budget_tokens: 2048 },
      messages: [{ role: 'user', content: 'hi again' }],
    });
    t.deepEqual(
      plain.content.map((b) => b.type),
      ['text'],
    );
    t.false('enable_thinking' in (lastUpstream('/compatible-mode/v1/chat/completions').body as Json));
    const gpt = await client.messages.create({
      model: GPT,
      max_tokens: 4096,
      thinking: { type: 'enabled', budget_tokens: 20_000 },
      messages: [{ role: 'user', content: 'hi gpt' }],
    });
    t.is(gpt.model, GPT);
    t.is((lastUpstream('/v1/chat/completions').body as Json).reasoning_effort, 'high');
    t.is(gpt.content[0].type, 'thinking', 'reasoning_content in a non-stream answer is a thinking block');
  },
);

test.serial(
  'OpenAI channel, stream with thinking: reasoning_content streams as a thinking block before the text; billed with it',
  async (t) => {
    const before = await balance();
    const stream = client.messages.stream({
      model: GPT,
      max_tokens: 2048,
      thinking: { type: 'enabled', budget_tokens: 1024 },
      messages: [{ role: 'user', content: 'think first' }],
    });
    const deltas: string[] = [];
    stream.on('streamEvent', (event) => {
      if (event.type === 'content_block_delta') deltas.push(event.delta.type);
    });
    const message = await stream.finalMessage();
    t.is((lastUpstream('/v1/chat/completions').body as Json).reasoning_effort, 'low');
    t.deepEqual(
      message.content.map((b) => b.type),
      ['thinking', 'text'],
    );
    t.regex((message.content[0] as Anthropic.ThinkingBlock).thinking, /^Thinking it over/);
    t.regex((message.content[1] as Anthropic.TextBlock).text, /think first/);
    t.true(deltas.indexOf('thinking_delta') < deltas.indexOf('text_delta') && deltas.includes('thinking_delta'));
    const reasoning = countTokens((message.content[0] as Anthropic.ThinkingBlock).thinking);
    t.true(message.usage.output_tokens > reasoning, 'reasoning tokens are output tokens');
    t.is(before - (await balance()), costOf(GPT_PRICES, message.usage.input_tokens, message.usage.output_tokens));
  },
);

test.serial('a stream whose upstream is silent for over 10 s starts with 200 and `event: ping` keep-alives, then the events', async (t) => {
  bed.mock.setBehavior(OPENAI_SECRET, { latencyMs: 10_500 });
  try {
    const res = await fetch(`${bed.url}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': apiKey, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
      body: JSON.stringify({ model: GPT, max_tokens: 32, stream: true, messages: [{ role: 'user', content: 'slow one' }] }),
    });
    t.is(res.status, 200);
    const text = await res.text();
    t.true(text.startsWith('event: ping\ndata: {"type":"ping"}\n\n'), text.slice(0, 80));
    t.false(text.includes(': keep-alive'));
    const events = parseEvents(text);
    t.is(events.find((e) => e.event !== 'ping')?.event, 'message_start');
    t.is(events.at(-1)?.event, 'message_stop');
  } finally {
    bed.mock.setBehavior(OPENAI_SECRET, {});
  }
});

/** A Claude-Code-shaped request: system blocks with cache_control, ~20 tools, stream, thinking, anthropic-beta. */
const LONG_SYSTEM = 'You are Claude Code, an interactive CLI tool that helps users with software engineering tasks. '.repeat(70);
const claudeCodeBody = (question: string) => ({
  model: CLAUDE,
  max_tokens: 32_000,
  stream: true,
  thinking: { type: 'enabled', budget_tokens: 31_999 },
  system: [
    { type: 'text', text: "You are Claude Code, Anthropic's official CLI for Claude." },
    { type: 'text', text: LONG_SYSTEM, cache_control: { type: 'ephemeral' } },
  ],
  tools: Array.from({ length: 20 }, (_, i) => ({
    name: `Tool${i}`,
    description: `Tool number ${i}`,
    input_schema: { type: 'object', properties: { path: { type: 'string' } }, required: ['path'], additionalProperties: false },
  })),
  tool_choice: { type: 'auto' },
  metadata: { user_id: 'user_abc_account_def_session_ghi' },
  messages: [{ role: 'user', content: [{ type: 'text', text: question }] }],
});

function parseEvents(text: string): Array<{ event: string; data: Json }> {
  return text
    .split('\n\n')
    .filter((block) => block.startsWith('event: '))
    .map((block) => {
      const [eventLine, dataLine] = block.split('\n');
      return { event: eventLine.slice('event: '.length), data: JSON.parse(dataLine.slice('data: '.length)) };
    });
}

test.serial(
  'a recorded Claude-Code-shaped request streams thinking and a tool call, billed with cache write then cache read at their prices',
  async (t) => {
    const results: Array<{ cost: bigint; usage: Json; requestId: string | null }> = [];
    for (const question of ['Read the file src/app.ts', 'Now read src/web.ts']) {
      const res = await fetch(`${bed.url}/v1/messages?beta=true`, {
        method: 'POST',
        headers: {
          'x-api-key': apiKey,
          'anthropic-version': '2023-06-01',
          'anthropic-beta': 'claude-code-20250219,interleaved-thinking-2025-05-14',
          'content-type': 'application/json',
        },
        body: JSON.stringify(claudeCodeBody(question)),
      });
      t.is(res.status, 200);
      t.regex(res.headers.get('content-type')!, /text\/event-stream/);
      const text = await res.text();
      t.false(text.includes('[DONE]'));
      const events = parseEvents(text);
      t.true(
        events.every((e) => e.event === e.data.type),
        'every event name is its type',
      );
      t.is(events[0].event, 'message_start');
      t.is(events[0].data.message.model, CLAUDE);
      t.deepEqual(
        events.slice(-2).map((e) => e.event),
        ['message_delta', 'message_stop'],
      );
      const starts = events.filter((e) => e.event === 'content_block_start').map((e) => e.data.content_block.type);
      t.deepEqual(starts, ['thinking', 'tool_use']);
      t.true(events.some((e) => e.data.delta?.type === 'thinking_delta'));
      const toolInput = events
        .filter((e) => e.data.delta?.type === 'input_json_delta')
        .map((e) => e.data.delta.partial_json)
        .join('');
      t.is(typeof JSON.parse(toolInput).path, 'string');
      const delta = events.at(-2)!.data;
      t.is(delta.delta.stop_reason, 'tool_use');
      const usage = { ...events[0].data.message.usage, ...delta.usage };
      results.push({ cost: nano(String(delta.usage.cost)), usage, requestId: res.headers.get('x-request-id') });
      const sent = lastUpstream('/v1/messages');
      t.is(sent.headers['anthropic-beta'], 'claude-code-20250219,interleaved-thinking-2025-05-14');
      t.like(sent.body as Json, { model: 'claude-sonnet-4-6', stream: true, thinking: { type: 'enabled', budget_tokens: 31_999 } });
      t.is(((sent.body as Json).tools as unknown[]).length, 20);
    }
    const [cold, warm] = results;
    t.true(cold.usage.cache_creation_input_tokens > 1000, 'the first request writes the cache');
    t.is(cold.usage.cache_read_input_tokens, 0);
    t.is(warm.usage.cache_read_input_tokens, cold.usage.cache_creation_input_tokens, 'the second reads it');
    for (const { cost, usage, requestId } of results) {
      const prompt = usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens;
      const expected = costWithCache(CLAUDE_PRICES, {
        prompt,
        completion: usage.output_tokens,
        cached: usage.cache_read_input_tokens,
        cacheWrite: usage.cache_creation_input_tokens,
      });
      t.is(cost, expected, 'usage.cost in message_delta');
      const row = await ledgerRow(requestId);
      t.like(row, {
        prompt_tokens: prompt,
        completion_tokens: usage.output_tokens,
        cached_tokens: usage.cache_read_input_tokens,
        cache_write_tokens: usage.cache_creation_input_tokens,
        estimated: false,
      });
      t.is(nano(String(row!.amount_usd).replace('-', '')), expected, 'the ledger row’s amount is the price arithmetic');
    }
    t.true(warm.cost < cold.cost);
  },
);

async function post(path: string, body: unknown, headers: Record<string, string> = { 'x-api-key': apiKey }) {
  const res = await fetch(`${bed.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Json, headers: res.headers };
}

const minimal = (model = CLAUDE) => ({ model, max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] });

test.serial('empty turns and unreadable blocks are 400 naming the field, not an upstream call', async (t) => {
  const expectRefused = (r: { status: number; json: Json }, field: string) => {
    t.is(r.status, 400, field);
    t.like(r.json, { type: 'error', error: { type: 'invalid_request_error', code: 'bad_request', param: field } });
  };
  // a translated channel would have sent `messages: []` and answered 502
  const documentOnly = [{ type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'notes' } }];
  for (const [model, messages, field] of [
    [CLAUDE, [{ role: 'user', content: [] }], 'messages.0.content'],
    [GPT, [{ role: 'user', content: '' }], 'messages.0.content'],
    [CLAUDE, [{ role: 'user', content: [{ type: 'text', text: 5 }] }], 'messages.0.content.0.text'],
    [GPT, [{ role: 'user', content: documentOnly }], 'messages.0.content'],
    [
      QWEN,
      [
        { role: 'user', content: 'hi' },
        { role: 'assistant', content: 'ok' },
        { role: 'user', content: documentOnly },
      ],
      'messages.2.content',
    ],
  ] as const) {
    expectRefused(await post('/v1/messages', { model, max_tokens: 16, messages }), field);
  }
  t.is(
    (await post('/v1/messages', { ...minimal(), messages: [{ role: 'user', content: documentOnly }] })).status,
    200,
    'Claude reads documents',
  );
  const prefill = {
    ...minimal(),
    messages: [
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: [] },
    ],
  };
  t.is((await post('/v1/messages', prefill)).status, 200, 'a final assistant turn may be empty');
});

test.serial('errors have Anthropic’s shape with SPEC §2 statuses and codes: 401, 400, 404, 402, 429; none billed', async (t) => {
  const rowsBefore = (await ledgerRows()).length;
  const expectError = (r: { status: number; json: Json }, status: number, type: string, code: string) => {
    t.is(r.status, status, code);
    t.is(r.json.type, 'error');
    t.is(r.json.error.type, type);
    t.is(r.json.error.code, code);
    t.is(typeof r.json.error.message, 'string');
  };
  expectError(await post('/v1/messages', minimal(), {}), 401, 'authentication_error', 'missing_key');
  expectError(await post('/v1/messages', minimal(), { 'x-api-key': 'sk-eastx-nope' }), 401, 'authentication_error', 'invalid_key');
  expectError(await post('/v1/messages', minimal(), { 'x-api-key': `\u00a0${apiKey}` }), 401, 'authentication_error', 'invalid_key');
  expectError(await post('/v1/messages', minimal(), { 'x-api-key': `${apiKey}\u00a0` }), 401, 'authentication_error', 'invalid_key');
  expectError(await post('/v1/messages/count_tokens', { model: CLAUDE, messages: [] }, {}), 401, 'authentication_error', 'missing_key');
  // the same key as a Bearer token works, and x-api-key with HTTP's own whitespace around it too
  t.is((await post('/v1/messages', minimal(), { authorization: `Bearer ${apiKey}` })).status, 200);
  t.is((await post('/v1/messages', minimal(), { 'x-api-key': ` ${apiKey}\t` })).status, 200);

  expectError(await post('/v1/messages', '{"model":'), 400, 'invalid_request_error', 'bad_request');
  const noMax = await post('/v1/messages', { model: CLAUDE, messages: [{ role: 'user', content: 'hi' }] });
  expectError(noMax, 400, 'invalid_request_error', 'bad_request');
  t.regex(noMax.json.error.message, /max_tokens/);
  expectError(await post('/v1/messages', minimal('msg/nope')), 404, 'not_found_error', 'model_not_found');
  expectError(
    await post('/v1/messages', { ...minimal(GPT), tools: [{ type: 'web_search_20250305', name: 'web_search' }] }),
    400,
    'invalid_request_error',
    'bad_request',
  );

  const wrongMethod = await fetch(`${bed.url}/v1/messages`, { headers: { 'x-api-key': apiKey } });
  expectError({ status: wrongMethod.status, json: (await wrongMethod.json()) as Json }, 405, 'invalid_request_error', 'method_not_allowed');

  // the SDK raises them as its typed errors
  const sdkError = await t.throwsAsync(client.messages.create(minimal('msg/nope') as Anthropic.MessageCreateParamsNonStreaming));
  t.true(sdkError instanceof Anthropic.NotFoundError);
  // with the id the SDK reads from `request-id`, the same as `x-request-id`
  t.regex(String((sdkError as InstanceType<typeof Anthropic.APIError>).requestID), /^req_[0-9a-f]{32}$/);
  const { response: answered } = await client.messages.create(minimal() as Anthropic.MessageCreateParamsNonStreaming).withResponse();
  t.is(answered.headers.get('request-id'), answered.headers.get('x-request-id'));
  const unauthenticated = await fetch(`${bed.url}/v1/messages`, { method: 'POST', body: '{}' });
  t.is(unauthenticated.headers.get('request-id'), unauthenticated.headers.get('x-request-id'));

  const poor = await newCustomer(bed.admin, 'messages-poor@example.com', '0.000001');
  expectError(
    await post('/v1/messages', { ...minimal(), max_tokens: 4000 }, { 'x-api-key': poor.apiKey }),
    402,
    'billing_error',
    'insufficient_balance',
  );

  const limited = await newCustomer(bed.admin, 'messages-limited@example.com', '1', { rpm_limit: 1 });
  t.is(
    (await post('/v1/messages/count_tokens', { model: GPT, messages: [{ role: 'user', content: 'x' }] }, { 'x-api-key': limited.apiKey }))
      .status,
    200,
  );
  const refused = await post('/v1/messages', minimal(), { 'x-api-key': limited.apiKey });
  expectError(refused, 429, 'rate_limit_error', 'rate_limit_exceeded');
  t.truthy(refused.headers.get('retry-after'));
  t.is((await ledgerRows()).length, rowsBefore + 3, 'only the three successful requests were billed');
});

test.serial(
  'OpenAI channel: parallel tool calls whose fragments interleave upstream stream as whole blocks, one after another',
  async (t) => {
    bed.mock.setBehavior(OPENAI_SECRET, { interleavedToolCalls: 2 });
    try {
      const stream = client.messages.stream({
        model: GPT,
        max_tokens: 200,
        tools: [WEATHER_TOOL],
        messages: [{ role: 'user', content: 'Weather in Paris and Rome?' }],
      });
      // what the SDK's `contentBlock` event (Claude Code's cue to run a tool) holds at each content_block_stop
      const atStop: Json[] = [];
      stream.on('contentBlock', (block) => atStop.push(structuredClone(block)));
      const message = await stream.finalMessage();
      t.is(message.stop_reason, 'tool_use');
      const calls = message.content.filter((b): b is Anthropic.ToolUseBlock => b.type === 'tool_use');
      t.is(calls.length, 2);
      t.not(calls[0]!.id, calls[1]!.id);
      t.true(calls.every((call) => typeof (call.input as Json).city === 'string'));
      t.deepEqual(atStop, calls as unknown as Json[], 'each block is whole when its content_block_stop comes');
    } finally {
      bed.mock.setBehavior(OPENAI_SECRET, {});
    }
  },
);

const REFUSAL = 'I can’t help with that request.';

test.serial('OpenAI channel: an upstream refusal is a text block with stop_reason refusal; an estimated bill counts it', async (t) => {
  bed.mock.setBehavior(OPENAI_SECRET, { refusal: REFUSAL, omitUsage: true });
  try {
    const created = await client.messages.create({ ...minimal(GPT), max_tokens: 64 } as Anthropic.MessageCreateParamsNonStreaming);
    t.deepEqual(created.content, [{ type: 'text', text: REFUSAL }] as Anthropic.ContentBlock[]);
    t.is(created.stop_reason, 'refusal');
    const stream = client.messages.stream({ ...minimal(GPT), max_tokens: 64 } as Anthropic.MessageCreateParamsNonStreaming);
    const streamed = await stream.finalMessage();
    t.is(streamed.stop_reason, 'refusal');
    t.deepEqual(
      streamed.content.map((b) => (b as Anthropic.TextBlock).text),
      [REFUSAL],
    );
    const { response } = await stream.withResponse();
    const row = await until(
      () => ledgerRow(response.headers.get('x-request-id')),
      (r) => r !== undefined,
    );
    t.like(row, { estimated: true, completion_tokens: countTokens(REFUSAL) });
    t.is(streamed.usage.output_tokens, countTokens(REFUSAL));
  } finally {
    bed.mock.setBehavior(OPENAI_SECRET, {});
  }
});

const ANSWER = {
  type: 'object',
  properties: { name: { type: 'string' }, age: { type: 'integer' } },
  required: ['name', 'age'],
  additionalProperties: false,
} as const;

test.serial(
  'structured output: output_config.format becomes a strict json_schema response_format; messages.parse gets its object',
  async (t) => {
    const parsed = await client.messages.parse({
      model: GPT,
      max_tokens: 200,
      messages: [{ role: 'user', content: 'Ada Lovelace' }],
      output_config: { format: jsonSchemaOutputFormat(ANSWER) },
    });
    t.is(typeof parsed.parsed_output?.name, 'string');
    t.is(typeof parsed.parsed_output?.age, 'number');
    const sent = lastUpstream('/v1/chat/completions').body as Json;
    t.like(sent.response_format, { type: 'json_schema', json_schema: { name: 'output', strict: true } });
    t.deepEqual(sent.response_format.json_schema.schema.required, ['name', 'age']);
    // the structured-outputs beta's top-level output_format, on DashScope
    const beta = await post('/v1/messages', {
      model: QWEN,
      max_tokens: 200,
      messages: [{ role: 'user', content: 'Ada Lovelace' }],
      output_format: { type: 'json_schema', schema: ANSWER },
    });
    t.is(beta.status, 200);
    t.like(JSON.parse(beta.json.content[0].text), { name: 'Ada Lovelace' });
    // what a translation cannot honour is a 400 naming the field; an Anthropic channel gets output_config as sent
    const output_config = { format: { type: 'json_schema', schema: ANSWER }, effort: 'low', task_budget: { total: 1000 } };
    const refused = await post('/v1/messages', { ...minimal(GPT), output_config });
    t.is(refused.status, 400);
    t.like(refused.json, { error: { type: 'invalid_request_error', code: 'bad_request', param: 'output_config.task_budget' } });
    const passed = await post('/v1/messages', { ...minimal(CLAUDE), output_config });
    t.is(passed.status, 200, JSON.stringify(passed.json));
    t.deepEqual((lastUpstream('/v1/messages').body as Json).output_config, output_config);
    const effortOnly = await post('/v1/messages', { ...minimal(GPT), output_config: { effort: 'high' } });
    t.is(effortOnly.status, 200, 'effort, which Claude Code always sends, is dropped');
  },
);

test.serial(
  'an upstream error after the stream started ends it with an Anthropic `event: error`; the produced part is billed',
  async (t) => {
    bed.mock.setBehavior(ANTHROPIC_SECRET, { midStreamError: true, chunkDelayMs: 5, reply: 'one two three four five six seven eight' });
    try {
      const res = await fetch(`${bed.url}/v1/messages`, {
        method: 'POST',
        headers: { 'x-api-key': apiKey, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
        body: JSON.stringify({ ...minimal(), stream: true, max_tokens: 100 }),
      });
      t.is(res.status, 200);
      const events = parseEvents(await res.text());
      t.true(
        events.some((e) => e.event === 'content_block_delta'),
        'output was streamed before the error',
      );
      const row = await until(
        () => ledgerRow(res.headers.get('x-request-id')),
        (r) => r !== undefined,
      );
      t.like(row, { estimated: true });
      t.true((row?.completion_tokens as number) > 0);
      // the prompt as the upstream reported it in message_start, not the gateway's count
      const start = events.find((e) => e.event === 'message_start')!;
      t.is(row?.prompt_tokens, start.data.message.usage.input_tokens);
      const last = events.at(-1)!;
      t.is(last.event, 'error');
      t.is(last.data.type, 'error');
      t.is(last.data.error.code, 'upstream_error');
      t.true(['api_error', 'overloaded_error'].includes(last.data.error.type));
      const stream = client.messages.stream({ ...minimal(), max_tokens: 100 } as Anthropic.MessageCreateParamsNonStreaming);
      await t.throwsAsync(stream.finalMessage(), undefined, 'the SDK raises the error event');
    } finally {
      bed.mock.setBehavior(ANTHROPIC_SECRET, {});
    }
  },
);

test.serial('a client that disconnects mid-stream cancels the upstream call and pays for what was produced', async (t) => {
  bed.mock.setBehavior(OPENAI_SECRET, { chunkDelayMs: 100, reply: Array.from({ length: 150 }, (_, i) => `word${i}`).join(' ') });
  try {
    const controller = new AbortController();
    const res = await fetch(`${bed.url}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': apiKey, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
      body: JSON.stringify({ ...minimal(GPT), stream: true, max_tokens: 300 }),
      signal: controller.signal,
    });
    t.is(res.status, 200);
    const requestId = res.headers.get('x-request-id');
    const reader = res.body!.getReader();
    let text = '';
    while ((text.match(/text_delta/g) ?? []).length < 6) text += new TextDecoder().decode((await reader.read()).value);
    controller.abort();
    const closed = await until(
      () => bed.mock.stats(OPENAI_SECRET).closedEarly,
      (n) => n >= 1,
    );
    t.true(closed >= 1, 'the upstream call was aborted');
    const row = await until(
      () => ledgerRow(requestId),
      (r) => r !== undefined,
    );
    t.truthy(row, 'the produced part is billed');
    t.is(row!.estimated, true);
    t.true((row!.completion_tokens as number) >= 6 && (row!.completion_tokens as number) < 150);
    t.is(await until(held, (h) => h === '0'), '0');
  } finally {
    bed.mock.setBehavior(OPENAI_SECRET, {});
  }
});
