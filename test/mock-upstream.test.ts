import test from 'ava';
import { encode } from 'gpt-tokenizer';
import { type MockUpstream, startMockUpstream } from '../src/mock/upstream.js';
import { untilTrueOrThrow } from './helpers/wait.js';

let mock: MockUpstream;
let seq = 0;
/** a fresh credential per test, so concurrent tests don't share behaviour or stats */
const secret = (name: string): string => `sk-${name}-${++seq}`;

test.before(async () => {
  mock = await startMockUpstream();
});
test.after.always(async () => {
  await mock.close();
});

type Json = Record<string, any>;

function post(path: string, body: unknown, headers: Record<string, string>, init: RequestInit = {}): Promise<Response> {
  return fetch(`${mock.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
    ...init,
  });
}
const bearer = (key: string): Record<string, string> => ({ authorization: `Bearer ${key}` });
const anthropicHeaders = (key: string): Record<string, string> => ({ 'x-api-key': key, 'anthropic-version': '2023-06-01' });

interface SseEvent {
  event?: string;
  data: string;
}
function parseSse(text: string): SseEvent[] {
  return text
    .split('\n\n')
    .filter((block) => block.trim() !== '')
    .map((block) => {
      const out: SseEvent = { data: '' };
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) out.event = line.slice(7);
        if (line.startsWith('data: ')) out.data += line.slice(6);
      }
      return out;
    });
}

/** polls `condition` every 5 ms until it holds (fails the test by throwing after 2 s) */
const reached = (condition: () => boolean, what: string) => untilTrueOrThrow(condition, what, 10_000, 5);

const chat = (content: string, extra: Json = {}): Json => ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }], ...extra });
const tokens = (text: string): number => encode(text).length;

// ---------------------------------------------------------------- OpenAI

test('openai chat: non-stream completion with realistic usage', async (t) => {
  const key = secret('chat');
  const res = await post('/v1/chat/completions', chat('What is the capital of France?'), bearer(key));
  t.is(res.status, 200);
  const body = (await res.json()) as Json;
  t.is(body.object, 'chat.completion');
  t.regex(body.id, /^chatcmpl-/);
  t.is(body.model, 'gpt-4o-mini');
  const reply = 'Hello! You said: What is the capital of France?';
  t.is(body.choices[0].message.content, reply);
  t.is(body.choices[0].finish_reason, 'stop');
  t.deepEqual(body.usage, {
    prompt_tokens: tokens('What is the capital of France?'),
    completion_tokens: tokens(reply),
    total_tokens: tokens('What is the capital of France?') + tokens(reply),
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
  });
  t.is(mock.stats(key).calls, 1);
  const recorded = mock.requests.find((r) => r.secret === key);
  t.is(recorded?.path, '/v1/chat/completions');
  t.is(recorded?.headers.authorization, `Bearer ${key}`);
  t.deepEqual((recorded!.body as Json).messages, [{ role: 'user', content: 'What is the capital of France?' }]);
});

// serial (ava runs serial tests before the others): its seconds of tokenizing in this process, where the mock
// runs, would hold up the concurrent tests' short waits
test.serial(
  'a prompt of one 8 MB word echoed back under max_tokens is cut by characters, not tokenized whole (BPE is quadratic in a piece)',
  async (t) => {
    const word = 'z'.repeat(8_000_000);
    for (const max_tokens of [16, 4_000]) {
      const answer = (await (await post('/v1/chat/completions', chat(word, { max_tokens }), bearer(secret('one-word')))).json()) as Json;
      t.is(answer.choices[0].finish_reason, 'length');
      t.true(answer.choices[0].message.content.startsWith('Hello! You said: zzz'));
      t.true(answer.usage.completion_tokens <= max_tokens, `${answer.usage.completion_tokens} tokens`);
    }
  },
);

test('openai chat: array content counts only text parts; reply / max_tokens / stop', async (t) => {
  const key = secret('parts');
  const parts = [
    { type: 'text', text: 'Describe' },
    { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } },
    { type: 'text', text: 'this image' },
  ];
  const a = (await (await post('/v1/chat/completions', chat(parts as unknown as string), bearer(key))).json()) as Json;
  t.is(a.choices[0].message.content, 'Hello! You said: Describe this image');
  t.is(a.usage.prompt_tokens, tokens('Describe this image'));

  mock.setBehavior(key, { reply: 'one two three four five six seven eight' });
  const b = (await (await post('/v1/chat/completions', chat('x', { max_tokens: 3 }), bearer(key))).json()) as Json;
  t.is(b.choices[0].finish_reason, 'length');
  t.is(b.usage.completion_tokens, 3);
  t.is(b.choices[0].message.content, 'one two three');

  const c = (await (await post('/v1/chat/completions', chat('x', { stop: [' four'] }), bearer(key))).json()) as Json;
  t.is(c.choices[0].message.content, 'one two three');
  t.is(c.choices[0].finish_reason, 'stop');
});

test('openai chat: stream with include_usage', async (t) => {
  const key = secret('stream');
  const res = await post(
    '/v1/chat/completions',
    chat('stream please', { stream: true, stream_options: { include_usage: true } }),
    bearer(key),
  );
  t.is(res.status, 200);
  t.regex(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  const events = parseSse(await res.text());
  t.is(events.at(-1)?.data, '[DONE]');
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data) as Json);
  t.true(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0]!.id));
  t.is(chunks[0]!.choices[0].delta.role, 'assistant');
  const contentChunks = chunks.filter((c) => typeof c.choices[0]?.delta.content === 'string' && c.choices[0].delta.content !== '');
  t.true(contentChunks.length >= 3);
  t.is(contentChunks.map((c) => c.choices[0].delta.content).join(''), 'Hello! You said: stream please');
  const finish = chunks.at(-2)!;
  t.is(finish.choices[0].finish_reason, 'stop');
  const usage = chunks.at(-1)!;
  t.deepEqual(usage.choices, []);
  t.is(usage.usage.completion_tokens, tokens('Hello! You said: stream please'));
  t.is(usage.usage.prompt_tokens, tokens('stream please'));

  const plain = parseSse(await (await post('/v1/chat/completions', chat('hi', { stream: true }), bearer(key))).text());
  t.false(plain.some((e) => e.data !== '[DONE]' && 'usage' in (JSON.parse(e.data) as Json)));
});

test('openai chat: tool calls (non-stream and stream framing) and tool results', async (t) => {
  const key = secret('tools');
  const tools = [
    { type: 'function', function: { name: 'search', parameters: { type: 'object' } } },
    { type: 'function', function: { name: 'weather', parameters: { type: 'object' } } },
  ];
  const a = (await (await post('/v1/chat/completions', chat('rain in Oslo?', { tools }), bearer(key))).json()) as Json;
  t.is(a.choices[0].finish_reason, 'tool_calls');
  const call = a.choices[0].message.tool_calls[0];
  t.regex(call.id, /^call_/);
  t.is(call.function.name, 'search');
  t.deepEqual(JSON.parse(call.function.arguments), { query: 'rain in Oslo?' });

  const named = { type: 'function', function: { name: 'weather' } };
  const s = await post('/v1/chat/completions', chat('rain in Oslo?', { tools, tool_choice: named, stream: true }), bearer(key));
  const chunks = parseSse(await s.text())
    .filter((e) => e.data !== '[DONE]')
    .map((e) => JSON.parse(e.data) as Json);
  const first = chunks[0]!.choices[0].delta.tool_calls[0];
  t.like(first, { index: 0, type: 'function', function: { name: 'weather', arguments: '' } });
  t.regex(first.id, /^call_/);
  const fragments = chunks.slice(1, -1).map((c) => c.choices[0].delta.tool_calls[0]);
  t.true(fragments.length >= 2);
  t.true(fragments.every((f) => f.index === 0 && f.id === undefined));
  t.deepEqual(JSON.parse(fragments.map((f) => f.function.arguments).join('')), { query: 'rain in Oslo?' });
  t.is(chunks.at(-1)!.choices[0].finish_reason, 'tool_calls');

  const none = (await (await post('/v1/chat/completions', chat('hi', { tools, tool_choice: 'none' }), bearer(key))).json()) as Json;
  t.is(none.choices[0].message.content, 'Hello! You said: hi');

  const messages = [
    { role: 'user', content: 'rain in Oslo?' },
    { role: 'assistant', content: null, tool_calls: [call] },
    { role: 'tool', tool_call_id: call.id, content: 'sunny, 21C' },
  ];
  const r = (await (await post('/v1/chat/completions', { model: 'm', messages, tools }, bearer(key))).json()) as Json;
  t.is(r.choices[0].message.content, 'Tool result received: sunny, 21C');
  t.is(r.choices[0].finish_reason, 'stop');
});

test('openai chat: the refusal knob answers a refusal; interleavedToolCalls streams parallel calls with fragments in turn', async (t) => {
  const key = secret('refuse');
  mock.setBehavior(key, { refusal: 'I can’t help with that.' });
  const tools = [{ type: 'function', function: { name: 'search', parameters: { type: 'object' } } }];
  const a = (await (await post('/v1/chat/completions', chat('do it', { tools }), bearer(key))).json()) as Json;
  t.like(a.choices[0], { finish_reason: 'stop', message: { content: null, refusal: 'I can’t help with that.' } });
  t.is(a.usage.completion_tokens, tokens('I can’t help with that.'));
  const s = await post('/v1/chat/completions', chat('do it', { stream: true }), bearer(key));
  const deltas = parseSse(await s.text())
    .filter((e) => e.data !== '[DONE]')
    .map((e) => (JSON.parse(e.data) as Json).choices[0].delta as Json);
  t.true(deltas.every((d) => !d.content));
  t.is(deltas.map((d) => d.refusal ?? '').join(''), 'I can’t help with that.');

  const calls = secret('interleave');
  mock.setBehavior(calls, { interleavedToolCalls: 2 });
  const whole = (await (await post('/v1/chat/completions', chat('rain in Oslo?', { tools }), bearer(calls))).json()) as Json;
  const made = whole.choices[0].message.tool_calls as Json[];
  t.is(made.length, 2);
  t.not(made[0].id, made[1].id);
  t.is(whole.usage.completion_tokens, 2 * (tokens('search') + tokens(made[0].function.arguments)));
  const streamed = await post('/v1/chat/completions', chat('rain in Oslo?', { tools, stream: true }), bearer(calls));
  const fragments = parseSse(await streamed.text())
    .filter((e) => e.data !== '[DONE]')
    .flatMap((e) => ((JSON.parse(e.data) as Json).choices[0].delta.tool_calls ?? []) as Json[]);
  t.deepEqual(
    fragments.slice(0, 4).map((f) => [f.index, f.id !== undefined]),
    [
      [0, true],
      [1, true],
      [0, false],
      [1, false],
    ],
    'both headers, then fragments in turn',
  );
  for (const index of [0, 1]) {
    const args = fragments.filter((f) => f.index === index).map((f) => f.function.arguments);
    t.deepEqual(JSON.parse(args.join('')), { query: 'rain in Oslo?' });
  }
  const invalid = await fetch(`${mock.url}/__mock/behavior`, { method: 'POST', body: JSON.stringify({ interleavedToolCalls: 0 }) });
  t.is(invalid.status, 400);
});

const PERSON = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 4 },
    age: { type: 'integer', minimum: 50 },
    email: { type: 'string', format: 'email' },
    role: { enum: ['admin', 'user'] },
    nickname: { anyOf: [{ type: 'null' }, { type: 'string' }] },
    tags: { type: 'array', items: { $ref: '#/$defs/tag' }, minItems: 2 },
  },
  required: ['name', 'age', 'email', 'role', 'nickname', 'tags'],
  additionalProperties: false,
  $defs: { tag: { type: 'object', properties: { label: { type: 'string' } }, required: ['label'] } },
};
const PERSON_SAMPLE = {
  name: 'Ada ',
  age: 50,
  email: 'mock@example.com',
  role: 'admin',
  nickname: 'Ada Lovelace',
  tags: [{ label: 'Ada Lovelace' }, { label: 'Ada Lovelace' }],
};

test('openai chat: refusal, toolCallsWithoutIndex and emptyToolInput behaviours', async (t) => {
  const key = secret('refuse');
  const streamed = async (body: Json) =>
    parseSse(await (await post('/v1/chat/completions', { ...body, stream: true }, bearer(key))).text())
      .filter((e) => e.data !== '[DONE]')
      .map((e) => JSON.parse(e.data) as Json);
  mock.setBehavior(key, { refusal: "I'm sorry, I can't help with that." });
  const refused = (await (await post('/v1/chat/completions', chat('hi'), bearer(key))).json()) as Json;
  t.like(refused.choices[0], { message: { content: null, refusal: "I'm sorry, I can't help with that." }, finish_reason: 'stop' });
  const refusalChunks = await streamed(chat('hi'));
  t.like(refusalChunks[0]!.choices[0].delta, { role: 'assistant', content: null, refusal: '' });
  t.is(refusalChunks.map((c) => c.choices[0].delta.refusal ?? '').join(''), "I'm sorry, I can't help with that.");
  t.true(refusalChunks.every((c) => c.choices[0].delta.content == null));

  const tools = [{ type: 'function', function: { name: 'now', parameters: { type: 'object', properties: {} } } }];
  mock.setBehavior(key, { toolCallsWithoutIndex: true, emptyToolInput: true });
  const calls = (await streamed(chat('time?', { tools }))).flatMap((c) => c.choices[0].delta.tool_calls ?? []);
  t.true(calls.length >= 2 && calls.every((call: Json) => !('index' in call)));
  t.is(calls.map((call: Json) => call.function.arguments).join(''), '{}');
  const whole = (await (await post('/v1/chat/completions', chat('time?', { tools }), bearer(key))).json()) as Json;
  t.is(whole.choices[0].message.tool_calls[0].function.arguments, '{}');
});

test('openai chat: response_format json_schema answers JSON fitting the schema; json_object an object', async (t) => {
  const key = secret('json');
  const format = { type: 'json_schema', json_schema: { name: 'person', strict: true, schema: PERSON } };
  const a = (await (await post('/v1/chat/completions', chat('Ada Lovelace', { response_format: format }), bearer(key))).json()) as Json;
  t.deepEqual(JSON.parse(a.choices[0].message.content), PERSON_SAMPLE);
  const s = await post('/v1/chat/completions', chat('Ada Lovelace', { response_format: format, stream: true }), bearer(key));
  const streamed = parseSse(await s.text())
    .filter((e) => e.data !== '[DONE]')
    .map((e) => (JSON.parse(e.data) as Json).choices[0]?.delta?.content ?? '')
    .join('');
  t.deepEqual(JSON.parse(streamed), PERSON_SAMPLE);
  const o = (await (
    await post('/v1/chat/completions', chat('hi', { response_format: { type: 'json_object' } }), bearer(key))
  ).json()) as Json;
  t.deepEqual(JSON.parse(o.choices[0].message.content), { answer: 'Hello! You said: hi' });
  const tool = { type: 'function', function: { name: 'person', parameters: PERSON } };
  const c = (await (await post('/v1/chat/completions', chat('Ada Lovelace', { tools: [tool] }), bearer(key))).json()) as Json;
  t.deepEqual(JSON.parse(c.choices[0].message.tool_calls[0].function.arguments), PERSON_SAMPLE, 'tool arguments fit the parameters too');
});

test('openai chat: automatic prompt caching of a long repeated prefix, in 128-token steps', async (t) => {
  const key = secret('cache');
  const long = 'Every token of this long system prompt is counted by the mock. '.repeat(100);
  const body = {
    model: 'gpt-4o',
    messages: [
      { role: 'system', content: long },
      { role: 'user', content: 'q' },
    ],
  };
  const first = (await (await post('/v1/chat/completions', body, bearer(key))).json()) as Json;
  t.is(first.usage.prompt_tokens_details.cached_tokens, 0);
  const second = (await (await post('/v1/chat/completions', body, bearer(key))).json()) as Json;
  t.is(second.usage.prompt_tokens_details.cached_tokens, Math.floor(tokens(long) / 128) * 128);
  t.is(second.usage.prompt_tokens, first.usage.prompt_tokens);
  const other = (await (await post('/v1/chat/completions', body, bearer(secret('cache-other')))).json()) as Json;
  t.is(other.usage.prompt_tokens_details.cached_tokens, 0, 'caches are per credential');
  const short = {
    model: 'gpt-4o',
    messages: [
      { role: 'system', content: 'short' },
      { role: 'user', content: 'q' },
    ],
  };
  await post('/v1/chat/completions', short, bearer(key));
  const again = (await (await post('/v1/chat/completions', short, bearer(key))).json()) as Json;
  t.is(again.usage.prompt_tokens_details.cached_tokens, 0, 'prefixes under 1024 tokens are not cached');
});

test('anthropic: cache_control breakpoints write, then read, the prefix; usage splits input tokens', async (t) => {
  const key = secret('ant-cache');
  const long = 'A long and stable set of instructions for the model to follow. '.repeat(100);
  const body = {
    model: 'claude-sonnet-4-5',
    max_tokens: 50,
    system: [{ type: 'text', text: long, cache_control: { type: 'ephemeral' } }],
    messages: [{ role: 'user', content: 'first' }],
  };
  const prefix = tokens(long);
  const total = tokens(`${long}\nfirst`);
  const cold = (await (await post('/v1/messages', body, anthropicHeaders(key))).json()) as Json;
  t.like(cold.usage, { input_tokens: total - prefix, cache_creation_input_tokens: prefix, cache_read_input_tokens: 0 });
  const warm = (await (await post('/v1/messages', { ...body, stream: true }, anthropicHeaders(key))).text()) as string;
  const start = JSON.parse(parseSse(warm)[0].data) as Json;
  t.like(start.message.usage, { input_tokens: total - prefix, cache_creation_input_tokens: 0, cache_read_input_tokens: prefix });
  const marked = {
    ...body,
    system: [{ type: 'text', text: long }],
    messages: [{ role: 'user', content: [{ type: 'text', text: 'first', cache_control: { type: 'ephemeral' } }] }],
  };
  const whole = (await (await post('/v1/messages', marked, anthropicHeaders(key))).json()) as Json;
  t.like(whole.usage, { input_tokens: 0, cache_creation_input_tokens: total }, 'a breakpoint on the last message caches everything');
});

test('anthropic: a forced tool answers with input fitting its input_schema; tool_choice any after a result calls the next tool', async (t) => {
  const key = secret('ant-json');
  const tools = [
    { name: 'lookup', input_schema: { type: 'object' } },
    { name: 'json_response', input_schema: PERSON },
  ];
  const forced = (await (
    await post(
      '/v1/messages',
      anthropicBody('Ada Lovelace', { tools, tool_choice: { type: 'tool', name: 'json_response' } }),
      anthropicHeaders(key),
    )
  ).json()) as Json;
  t.like(forced.content[0], { type: 'tool_use', name: 'json_response', input: PERSON_SAMPLE });
  const messages = [
    { role: 'user', content: 'Ada Lovelace' },
    { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'lookup', input: { query: 'Ada Lovelace' } }] },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'found' }] },
  ];
  const next = (await (
    await post('/v1/messages', { ...anthropicBody('x', { tools, tool_choice: { type: 'any' } }), messages }, anthropicHeaders(key))
  ).json()) as Json;
  t.like(next.content[0], { type: 'tool_use', name: 'json_response' });
});

test('openai chat: errors in OpenAI shape, fail times + Retry-After, missing key', async (t) => {
  const key = secret('fail');
  mock.setBehavior(key, { fail: { status: 429, retryAfter: '2', times: 2 } });
  for (let i = 0; i < 2; i++) {
    const res = await post('/v1/chat/completions', chat('hi'), bearer(key));
    t.is(res.status, 429);
    t.is(res.headers.get('retry-after'), '2');
    const body = (await res.json()) as Json;
    t.is(body.error.code, 'rate_limit_exceeded');
    t.is(typeof body.error.message, 'string');
    t.true('type' in body.error);
  }
  t.is((await post('/v1/chat/completions', chat('hi'), bearer(key))).status, 200);

  const noKey = await post('/v1/chat/completions', chat('hi'), {});
  t.is(noKey.status, 401);
  t.is(((await noKey.json()) as Json).error.code, 'invalid_api_key');
  const bad = await post('/v1/chat/completions', { model: 'm' }, bearer(key));
  t.is(bad.status, 400);
  t.is(((await bad.json()) as Json).error.type, 'invalid_request_error');
});

test('openai embeddings: deterministic floats, base64 float32 LE, dimensions, usage', async (t) => {
  const key = secret('emb');
  const body = { model: 'text-embedding-3-small', input: ['hello world', 'bye'] };
  const a = (await (await post('/v1/embeddings', body, bearer(key))).json()) as Json;
  t.is(a.object, 'list');
  t.is(a.data.length, 2);
  const v0 = a.data[0].embedding as number[];
  t.is(v0.length, 8);
  t.true(v0.every((x) => x >= -1 && x <= 1));
  t.true(v0.some((x) => !Number.isInteger(x)));
  t.notDeepEqual(v0, a.data[1].embedding);
  t.deepEqual(a.usage, { prompt_tokens: tokens('hello world') + tokens('bye'), total_tokens: tokens('hello world') + tokens('bye') });

  const again = (await (await post('/v1/embeddings', { ...body, input: 'hello world' }, bearer(key))).json()) as Json;
  t.deepEqual(again.data[0].embedding, v0);

  const b64 = (await (await post('/v1/embeddings', { ...body, encoding_format: 'base64' }, bearer(key))).json()) as Json;
  const buf = Buffer.from(b64.data[0].embedding as string, 'base64');
  const decoded = Array.from({ length: buf.length / 4 }, (_, i) => buf.readFloatLE(i * 4));
  t.deepEqual(decoded, v0);

  const dims = (await (await post('/v1/embeddings', { ...body, dimensions: 4 }, bearer(key))).json()) as Json;
  t.deepEqual(dims.data[0].embedding, v0.slice(0, 4));

  const tokensIn = (await (await post('/v1/embeddings', { model: 'm', input: [[1, 2, 3]] }, bearer(key))).json()) as Json;
  t.is(tokensIn.usage.prompt_tokens, 3);
});

// ---------------------------------------------------------------- DashScope compatible mode

test('dashscope compatible mode: chat works, embeddings always floats', async (t) => {
  const key = secret('dsc');
  const c = (await (
    await post('/compatible-mode/v1/chat/completions', chat('ni hao', { model: 'qwen-plus' }), bearer(key))
  ).json()) as Json;
  t.is(c.choices[0].message.content, 'Hello! You said: ni hao');
  const e = (await (
    await post('/compatible-mode/v1/embeddings', { model: 'text-embedding-v3', input: 'x', encoding_format: 'base64' }, bearer(key))
  ).json()) as Json;
  t.true(Array.isArray(e.data[0].embedding));
  t.is(mock.stats(key).calls, 2);
});

// ---------------------------------------------------------------- Anthropic

const anthropicBody = (content: unknown, extra: Json = {}): Json => ({
  model: 'claude-sonnet-4-5',
  max_tokens: 256,
  messages: [{ role: 'user', content }],
  ...extra,
});

test('anthropic: header and max_tokens validation, error shapes', async (t) => {
  const key = secret('anth-val');
  const noVersion = await post('/v1/messages', anthropicBody('hi'), { 'x-api-key': key });
  t.is(noVersion.status, 400);
  t.like((await noVersion.json()) as Json, { type: 'error', error: { type: 'invalid_request_error' } });
  const noMax = await post('/v1/messages', { model: 'c', messages: [{ role: 'user', content: 'hi' }] }, anthropicHeaders(key));
  t.is(noMax.status, 400);
  t.regex(((await noMax.json()) as Json).error.message, /max_tokens/);
  const noKey = await post('/v1/messages', anthropicBody('hi'), { 'anthropic-version': '2023-06-01' });
  t.is(noKey.status, 401);
  t.is(((await noKey.json()) as Json).error.type, 'authentication_error');
  mock.setBehavior(key, { fail: { status: 529, times: 1 } });
  const overloaded = await post('/v1/messages', anthropicBody('hi'), anthropicHeaders(key));
  t.is(overloaded.status, 529);
  t.like((await overloaded.json()) as Json, { type: 'error', error: { type: 'overloaded_error' } });
});

test('anthropic: non-stream message with system tokens, tool_use, tool_result', async (t) => {
  const key = secret('anth');
  const res = await post(
    '/v1/messages',
    anthropicBody('Bonjour', { system: [{ type: 'text', text: 'Be brief.' }] }),
    anthropicHeaders(key),
  );
  t.is(res.status, 200);
  const m = (await res.json()) as Json;
  t.like(m, { type: 'message', role: 'assistant', model: 'claude-sonnet-4-5', stop_reason: 'end_turn', stop_sequence: null });
  t.regex(m.id, /^msg_/);
  t.deepEqual(m.content, [{ type: 'text', text: 'Hello! You said: Bonjour' }]);
  t.is(m.usage.input_tokens, tokens('Be brief.\nBonjour'));
  t.is(m.usage.output_tokens, tokens('Hello! You said: Bonjour'));

  const tools = [{ name: 'lookup', input_schema: { type: 'object' } }];
  const tu = (await (await post('/v1/messages', anthropicBody('find cats', { tools }), anthropicHeaders(key))).json()) as Json;
  t.is(tu.stop_reason, 'tool_use');
  t.like(tu.content[0], { type: 'tool_use', name: 'lookup', input: { query: 'find cats' } });
  t.regex(tu.content[0].id, /^toolu_/);

  const messages = [
    { role: 'user', content: 'find cats' },
    { role: 'assistant', content: tu.content },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: tu.content[0].id, content: [{ type: 'text', text: '3 cats' }] }] },
  ];
  const tr = (await (await post('/v1/messages', { model: 'c', max_tokens: 50, messages, tools }, anthropicHeaders(key))).json()) as Json;
  t.deepEqual(tr.content, [{ type: 'text', text: 'Tool result received: 3 cats' }]);

  const none = (await (
    await post('/v1/messages', anthropicBody('hi', { tools, tool_choice: { type: 'none' } }), anthropicHeaders(key))
  ).json()) as Json;
  t.is(none.content[0].type, 'text');

  const image = { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'AAAA' } };
  const img = (await (
    await post('/v1/messages', anthropicBody([image, { type: 'text', text: 'what is it' }]), anthropicHeaders(key))
  ).json()) as Json;
  t.is(img.content[0].text, 'Hello! You said: what is it');

  const short = (await (
    await post('/v1/messages', anthropicBody('a b c d e f g h', { max_tokens: 2 }), anthropicHeaders(key))
  ).json()) as Json;
  t.is(short.stop_reason, 'max_tokens');
  t.is(short.usage.output_tokens, 2);
});

test('anthropic: stream event sequence (text and tool_use)', async (t) => {
  const key = secret('anth-stream');
  const events = parseSse(await (await post('/v1/messages', anthropicBody('stream me', { stream: true }), anthropicHeaders(key))).text());
  const names = events.map((e) => e.event);
  t.deepEqual(names.slice(0, 3), ['message_start', 'content_block_start', 'ping']);
  t.deepEqual(names.slice(-3), ['content_block_stop', 'message_delta', 'message_stop']);
  const payloads = events.map((e) => JSON.parse(e.data) as Json);
  t.true(payloads.every((p, i) => p.type === names[i]));
  t.is(payloads[0]!.message.usage.input_tokens, tokens('stream me'));
  const deltas = payloads.filter((p) => p.type === 'content_block_delta');
  t.true(deltas.length >= 3);
  t.is(deltas.map((d) => d.delta.text).join(''), 'Hello! You said: stream me');
  t.true(deltas.every((d) => d.delta.type === 'text_delta' && d.index === 0));
  const messageDelta = payloads.at(-2)!;
  t.is(messageDelta.delta.stop_reason, 'end_turn');
  t.is(messageDelta.usage.output_tokens, tokens('Hello! You said: stream me'));

  const tools = [{ name: 'lookup', input_schema: { type: 'object' } }];
  const toolEvents = parseSse(
    await (await post('/v1/messages', anthropicBody('q', { stream: true, tools }), anthropicHeaders(key))).text(),
  ).map((e) => JSON.parse(e.data) as Json);
  t.like(toolEvents[1]!, { type: 'content_block_start', content_block: { type: 'tool_use', name: 'lookup', input: {} } });
  const partial = toolEvents.filter((p) => p.type === 'content_block_delta').map((p) => p.delta);
  t.true(partial.every((d) => d.type === 'input_json_delta'));
  t.deepEqual(JSON.parse(partial.map((d) => d.partial_json).join('')), { query: 'q' });
  t.is(toolEvents.at(-2)!.delta.stop_reason, 'tool_use');

  // emptyToolInput: Claude streams an empty input as one empty fragment
  mock.setBehavior(key, { emptyToolInput: true });
  const empty = parseSse(await (await post('/v1/messages', anthropicBody('q', { stream: true, tools }), anthropicHeaders(key))).text())
    .map((e) => JSON.parse(e.data) as Json)
    .filter((p) => p.type === 'content_block_delta');
  t.deepEqual(
    empty.map((p) => p.delta),
    [{ type: 'input_json_delta', partial_json: '' }],
  );
  const whole = (await (await post('/v1/messages', anthropicBody('q', { tools }), anthropicHeaders(key))).json()) as Json;
  t.deepEqual(whole.content[0].input, {});
});

test('anthropic: midStreamError ends the stream with event: error', async (t) => {
  const key = secret('anth-err');
  mock.setBehavior(key, { midStreamError: true });
  const events = parseSse(
    await (await post('/v1/messages', anthropicBody('hello there friend', { stream: true }), anthropicHeaders(key))).text(),
  );
  t.is(events.filter((e) => e.event === 'content_block_delta').length, 1);
  t.is(events.at(-1)?.event, 'error');
  t.deepEqual(JSON.parse(events.at(-1)!.data), { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } });
});

// ---------------------------------------------------------------- faults and counters

test('stats: inFlight / maxInFlight under latency', async (t) => {
  const key = secret('conc');
  mock.setBehavior(key, { latencyMs: 300 });
  const pending = [1, 2, 3].map(() => post('/v1/chat/completions', chat('hi'), bearer(key)));
  await reached(() => mock.stats(key).inFlight === 3, 'three calls in flight');
  t.is(mock.stats(key).maxInFlight, 3);
  const responses = await Promise.all(pending);
  t.true(responses.every((r) => r.status === 200));
  await Promise.all(responses.map((r) => r.text()));
  await reached(() => mock.stats(key).inFlight === 0, 'no call in flight');
  t.like(mock.stats(key), { inFlight: 0, maxInFlight: 3, calls: 3, closedEarly: 0 });
});

test('hang: client abort is counted as closedEarly', async (t) => {
  const key = secret('hang');
  mock.setBehavior(key, { hang: true });
  const controller = new AbortController();
  const request = post('/v1/chat/completions', chat('hi'), bearer(key), { signal: controller.signal });
  request.catch(() => undefined);
  await reached(() => mock.requests.some((r) => r.secret === key), 'the call to arrive');
  t.is(mock.stats(key).inFlight, 1);
  const before = Date.now();
  controller.abort();
  await t.throwsAsync(request, { any: true });
  await reached(() => mock.stats(key).inFlight === 0, 'no call in flight');
  const stats = mock.stats(key);
  t.is(stats.inFlight, 0);
  t.is(stats.closedEarly, 1);
  t.true((stats.lastClosedAt ?? 0) >= before);
});

test('reset behaviour destroys the connection; midStreamResetAfter cuts a stream', async (t) => {
  const key = secret('reset');
  mock.setBehavior(key, { reset: true });
  await t.throwsAsync(post('/v1/chat/completions', chat('hi'), bearer(key)));

  const key2 = secret('midreset');
  mock.setBehavior(key2, { midStreamResetAfter: 2, chunkDelayMs: 5 });
  // only streams are cut; a non-stream answer is unaffected
  t.is((await post('/v1/chat/completions', chat('a b c d e f'), bearer(key2))).status, 200);
  const streamed = await post('/v1/chat/completions', chat('a b c d e f', { stream: true }), bearer(key2));
  t.is(streamed.status, 200);
  const reader = streamed.body!.getReader();
  let received = '';
  const error = await (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return undefined;
        received += Buffer.from(value).toString('utf8');
      }
    } catch (e) {
      return e;
    }
  })();
  t.truthy(error);
  const contents = parseSse(received)
    .map((e) => JSON.parse(e.data) as Json)
    .filter((c) => c.choices[0]?.delta.content);
  t.is(contents.length, 2);
  t.is(mock.stats(key2).closedEarly, 0);
});

test('waitForRequests resolves and times out', async (t) => {
  const own = await startMockUpstream();
  try {
    const waiting = own.waitForRequests(2, 2000);
    for (const input of ['x', 'y']) {
      await fetch(`${own.url}/v1/embeddings`, { method: 'POST', headers: bearer('w'), body: JSON.stringify({ model: 'm', input }) });
    }
    await waiting;
    t.deepEqual(
      own.requests.map((r) => [r.method, r.path, (r.body as Json).input]),
      [
        ['POST', '/v1/embeddings', 'x'],
        ['POST', '/v1/embeddings', 'y'],
      ],
    );
    await t.throwsAsync(own.waitForRequests(3, 50), { message: /expected 3 requests/ });
  } finally {
    await own.close();
  }
});

// ---------------------------------------------------------------- DashScope images

const imageBody = (extra: Json = {}): Json => ({
  model: 'wanx2.1-t2i-turbo',
  input: { prompt: 'a red fox in snow' },
  parameters: { size: '1024*1024', n: 2 },
  ...extra,
});
const ASYNC = { 'x-dashscope-async': 'enable' };

async function poll(key: string, taskId: string): Promise<Json> {
  const res = await fetch(`${mock.url}/api/v1/tasks/${taskId}`, { headers: bearer(key) });
  t_is200(res);
  return (await res.json()) as Json;
}
function t_is200(res: Response): void {
  if (res.status !== 200) throw new Error(`poll answered ${res.status}`);
}

test('dashscope images: async header, size validation, error shape', async (t) => {
  const key = secret('img-val');
  const sync = await post('/api/v1/services/aigc/text2image/image-synthesis', imageBody(), bearer(key));
  t.is(sync.status, 400);
  const body = (await sync.json()) as Json;
  t.true(typeof body.code === 'string' && typeof body.message === 'string' && typeof body.request_id === 'string');
  const badSize = await post('/api/v1/services/aigc/text2image/image-synthesis', imageBody({ parameters: { size: '1024x1024' } }), {
    ...bearer(key),
    ...ASYNC,
  });
  t.is(badSize.status, 400);
  t.is(((await badSize.json()) as Json).code, 'InvalidParameter');
  t.is(mock.stats(key).inFlight, 0);
});

test('dashscope images: PENDING → RUNNING → SUCCEEDED, slot held until final fetch', async (t) => {
  const key = secret('img');
  const submit = await post('/api/v1/services/aigc/text2image/image-synthesis', imageBody(), { ...bearer(key), ...ASYNC });
  t.is(submit.status, 200);
  const s = (await submit.json()) as Json;
  t.is(s.output.task_status, 'PENDING');
  const taskId = s.output.task_id as string;
  t.is(mock.stats(key).inFlight, 1);
  t.is((await poll(key, taskId)).output.task_status, 'PENDING');
  t.is((await poll(key, taskId)).output.task_status, 'RUNNING');
  t.is(mock.stats(key).inFlight, 1);
  const done = await poll(key, taskId);
  t.is(done.output.task_status, 'SUCCEEDED');
  t.is(done.output.results.length, 2);
  t.like(done.output.results[0], { url: `${mock.url}/__mock/images/${taskId}/0.png`, orig_prompt: 'a red fox in snow' });
  t.not(done.output.results[0].actual_prompt, 'a red fox in snow');
  t.deepEqual(done.usage, { image_count: 2 });
  t.like(mock.stats(key), { inFlight: 0, maxInFlight: 1, calls: 1 });
  const png = await fetch(done.output.results[1].url as string);
  t.is(png.headers.get('content-type'), 'image/png');
});

test('dashscope images: partial results and FAILED tasks', async (t) => {
  const key = secret('img-partial');
  mock.setBehavior(key, { imageTaskPolls: 0, imagesProduced: 1 });
  const s = (await (
    await post('/api/v1/services/aigc/text2image/image-synthesis', imageBody(), { ...bearer(key), ...ASYNC })
  ).json()) as Json;
  mock.setBehavior(key, { imageTaskPolls: 0 }); // fixed at submit time: changing it now has no effect
  const done = await poll(key, s.output.task_id);
  t.is(done.output.task_status, 'SUCCEEDED');
  t.truthy(done.output.results[0].url);
  t.truthy(done.output.results[1].code);
  t.truthy(done.output.results[1].message);
  t.is(done.usage.image_count, 1);

  const key2 = secret('img-fail');
  mock.setBehavior(key2, {
    imageTaskPolls: 1,
    imageFail: { code: 'DataInspectionFailed', message: 'Input data may contain inappropriate content.' },
  });
  const s2 = (await (
    await post('/api/v1/services/aigc/text2image/image-synthesis', imageBody(), { ...bearer(key2), ...ASYNC })
  ).json()) as Json;
  t.is((await poll(key2, s2.output.task_id)).output.task_status, 'PENDING');
  const failed = await poll(key2, s2.output.task_id);
  t.like(failed.output, { task_status: 'FAILED', code: 'DataInspectionFailed' });
  t.is(mock.stats(key2).inFlight, 0);
});

// ---------------------------------------------------------------- HTTP control

test('http control: behavior, stats, 404', async (t) => {
  const key = secret('ctl');
  const set = await fetch(`${mock.url}/__mock/behavior`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ secret: key, fail: { status: 503, times: 1 } }),
  });
  t.is(set.status, 200);
  t.is((await post('/v1/chat/completions', chat('hi'), bearer(key))).status, 503);
  t.is((await post('/v1/chat/completions', chat('hi'), bearer(key))).status, 200);
  const stats = (await (await fetch(`${mock.url}/__mock/stats?secret=${key}`)).json()) as Json;
  t.like(stats, { calls: 2, inFlight: 0 });
  const invalid = await fetch(`${mock.url}/__mock/behavior`, { method: 'POST', body: JSON.stringify({ latencyMs: 'slow' }) });
  t.is(invalid.status, 400);
  const badRefusal = await fetch(`${mock.url}/__mock/behavior`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ secret: key, refusal: 1, toolCallsWithoutIndex: 'yes' }),
  });
  t.is(badRefusal.status, 400);
  const missing = await fetch(`${mock.url}/v2/nothing`);
  t.is(missing.status, 404);
  t.truthy(((await missing.json()) as Json).error);
});

test('reset() and POST /__mock/reset clear behaviours, counters and the log', async (t) => {
  const own = await startMockUpstream();
  try {
    own.setDefaultBehavior({ reply: 'default reply' });
    const first = await fetch(`${own.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: 'Bearer k', 'content-type': 'application/json' },
      body: JSON.stringify(chat('hi')),
    });
    const r = (await first.json()) as Json;
    t.is(r.choices[0].message.content, 'default reply');
    t.is(own.requests.length, 1);
    t.is((await fetch(`${own.url}/__mock/reset`, { method: 'POST' })).status, 200);
    t.is(own.requests.length, 0);
    t.is(own.stats('k').calls, 0);
    const again = (await (
      await fetch(`${own.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: 'Bearer k' },
        body: JSON.stringify(chat('hi')),
      })
    ).json()) as Json;
    t.is(again.choices[0].message.content, 'Hello! You said: hi');
    own.reset();
    t.is(own.requests.length, 0);
  } finally {
    await own.close();
  }
});

test('close() ends hanging requests', async (t) => {
  const own = await startMockUpstream();
  own.setBehavior('h', { hang: true });
  const request = fetch(`${own.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: 'Bearer h' },
    body: JSON.stringify(chat('x')),
  });
  await own.waitForRequests(1, 2000);
  await own.close();
  await t.throwsAsync(request);
});
