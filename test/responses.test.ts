import test from 'ava';
import OpenAI from 'openai';
import type { FunctionTool, Response, ResponseStreamEvent } from 'openai/resources/responses/responses';
import { CHAT_MODELS, type ClientBed, startClientBed } from './helpers/clients.js';
import { newCustomer } from './helpers/customer.js';
import { costWithCache, nano } from './helpers/money.js';
import { assertFitsOpenAI } from './helpers/openapi.js';
import { until } from './helpers/wait.js';

// The Responses API (SPEC §1b) with the official `openai` SDK, only baseURL and apiKey changed, against an
// OpenAI-type, an Anthropic and a DashScope channel: create and stream, a function-tool round trip through
// previous_response_id, text.format, store and GET, the other account refused, built-in tools refused, and
// the ledger's arithmetic. Every answer and every stream event is checked against OpenAI's schemas.

const formatNano = (value: bigint) => `${value / 1_000_000_000n}.${(value % 1_000_000_000n).toString().padStart(9, '0')}`;

let bed: ClientBed;
let client: OpenAI;
const DASHSCOPE_MODEL = 'qwen-plus';
const PRICES: Record<string, { input: number; output: number; cacheRead?: number; cacheWrite?: number }> = {
  [CHAT_MODELS.openai]: { input: 0.15, output: 0.6 },
  [CHAT_MODELS.anthropic]: { input: 3, output: 15, cacheRead: 0.3, cacheWrite: 3.75 },
  [DASHSCOPE_MODEL]: { input: 0.4, output: 1.2 },
  'cached-mini': { input: 0.15, output: 0.6, cacheRead: 0.075, cacheWrite: 0.15 },
};

test.before(async () => {
  bed = await startClientBed('responses');
  client = new OpenAI({ baseURL: bed.baseURL, apiKey: bed.apiKey, maxRetries: 0 });
  const dashscope = await bed.admin.channel('dashscope-chat', 'dashscope', bed.mock.url);
  await bed.admin.token(dashscope.id, 'sk-dashscope-chat', 8);
  await bed.admin.model(DASHSCOPE_MODEL, {
    channel_id: dashscope.id,
    upstream_model: 'qwen-plus',
    input_price_per_1m: 0.4,
    output_price_per_1m: 1.2,
    max_output_tokens: 2048,
  });
});

test.after.always(async () => {
  await bed?.stop();
});

const weather: FunctionTool = {
  type: 'function',
  name: 'get_weather',
  description: 'The weather in a city',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false },
  strict: true,
};

type Json = Record<string, unknown>;

/** The schema of each event type eastx emits (the union's errors name every other event type too). */
const EVENT_SCHEMAS: Record<string, string> = {
  'response.created': 'ResponseCreatedEvent',
  'response.in_progress': 'ResponseInProgressEvent',
  'response.output_item.added': 'ResponseOutputItemAddedEvent',
  'response.output_item.done': 'ResponseOutputItemDoneEvent',
  'response.content_part.added': 'ResponseContentPartAddedEvent',
  'response.content_part.done': 'ResponseContentPartDoneEvent',
  'response.output_text.delta': 'ResponseTextDeltaEvent',
  'response.output_text.done': 'ResponseTextDoneEvent',
  'response.function_call_arguments.delta': 'ResponseFunctionCallArgumentsDeltaEvent',
  'response.function_call_arguments.done': 'ResponseFunctionCallArgumentsDoneEvent',
  'response.completed': 'ResponseCompletedEvent',
  'response.incomplete': 'ResponseIncompleteEvent',
  'response.reasoning_text.delta': 'ResponseReasoningTextDeltaEvent',
  'response.reasoning_text.done': 'ResponseReasoningTextDoneEvent',
  'response.refusal.delta': 'ResponseRefusalDeltaEvent',
  'response.refusal.done': 'ResponseRefusalDoneEvent',
  error: 'ResponseErrorEvent',
};

/** An event fits its own schema and OpenAI's ResponseStreamEvent union. */
function assertEvent(t: import('ava').ExecutionContext, event: { type: string }) {
  const schema = EVENT_SCHEMAS[event.type];
  if (!schema) return t.fail(`unexpected event type ${event.type}`);
  assertFitsOpenAI(t, schema, event, event.type);
  assertFitsOpenAI(t, 'ResponseStreamEvent', event, event.type);
}

/** The ledger row of a request, and the cost SPEC §3's arithmetic gives for its tokens. */
async function ledgerOf(requestId: string) {
  const rows = (await bed.admin.usage(`user_id=${bed.userId}`)).data;
  const row = rows.find((r) => r.request_id === requestId) as Json;
  return row;
}

async function assertBilled(t: import('ava').ExecutionContext, requestId: string | null, response: Response) {
  t.truthy(requestId);
  const row = await ledgerOf(requestId!);
  t.truthy(row, 'a ledger row for the request');
  const usage = response.usage!;
  t.is(row.prompt_tokens, usage.input_tokens);
  t.is(row.completion_tokens, usage.output_tokens);
  const expected = costWithCache(PRICES[response.model], {
    prompt: usage.input_tokens,
    completion: usage.output_tokens,
    cached: usage.input_tokens_details.cached_tokens,
    cacheWrite: (usage.input_tokens_details as { cache_write_tokens?: number }).cache_write_tokens ?? 0,
  });
  t.is(-nano(String(row.amount_usd)), expected, 'the ledger charge is the price arithmetic of the usage');
  t.is(nano((usage as unknown as { cost: number }).cost), expected, 'usage.cost');
}

for (const [type, model] of Object.entries(CHAT_MODELS)) {
  test.serial(`${type}: responses.create with a function tool, then the tool output through previous_response_id`, async (t) => {
    const { data: first, response: raw } = await client.responses
      .create({ model, instructions: 'Use the tool.', input: 'Weather in Lyon?', tools: [weather] })
      .withResponse();
    assertFitsOpenAI(t, 'Response', first);
    t.regex(first.id, /^resp_/);
    t.is(first.object, 'response');
    t.is(first.status, 'completed');
    t.is(first.model, model);
    t.is(first.instructions, 'Use the tool.');
    const call = first.output.find((item) => item.type === 'function_call');
    if (call?.type !== 'function_call') return t.fail('a function_call item');
    t.is(call.name, 'get_weather');
    t.deepEqual(Object.keys(JSON.parse(call.arguments)), ['city']);
    t.regex(call.call_id, /./);
    t.truthy(raw.headers.get('x-eastx-cost-usd'));
    t.truthy(raw.headers.get('x-ratelimit-limit-requests'));
    t.is(raw.headers.get('x-eastx-cost-usd'), String((first.usage as unknown as { cost: number }).cost));
    await assertBilled(t, raw.headers.get('x-request-id'), first);

    const { data: second, response: raw2 } = await client.responses
      .create({
        model,
        previous_response_id: first.id,
        input: [{ type: 'function_call_output', call_id: call.call_id, output: '{"forecast":"sunny"}' }],
        tools: [weather],
      })
      .withResponse();
    assertFitsOpenAI(t, 'Response', second);
    t.is(second.previous_response_id, first.id);
    t.is(second.instructions, null);
    t.is(second.output_text, 'Tool result received: {"forecast":"sunny"}');
    await assertBilled(t, raw2.headers.get('x-request-id'), second);

    // upstream: the conversation continued (user turn, tool call, tool result), the previous instructions not carried over
    const sent = bed.mock.requests.at(-1)!.body as Json;
    const text = JSON.stringify(sent);
    t.true(text.includes('Weather in Lyon?'));
    t.true(text.includes('get_weather'));
    t.false(text.includes('Use the tool.'), 'instructions of the previous response are not carried over');

    const stored = await client.responses.retrieve(second.id);
    assertFitsOpenAI(t, 'Response', stored);
    t.is(stored.id, second.id);
    t.is(stored.output_text, second.output_text);
  });

  test.serial(`${type}: responses.stream with a tool round trip; every event fits OpenAI's schema`, async (t) => {
    const events: ResponseStreamEvent[] = [];
    const stream = client.responses.stream({ model, input: 'Weather in Paris?', tools: [weather] });
    stream.on('event', (event) => events.push(event));
    const first = await stream.finalResponse();
    for (const event of events) assertEvent(t, event);
    t.deepEqual(
      events.map((e) => e.sequence_number),
      events.map((_, i) => i),
    );
    const types = events.map((e) => e.type);
    t.deepEqual(types.slice(0, 3), ['response.created', 'response.in_progress', 'response.output_item.added']);
    t.true(types.includes('response.function_call_arguments.delta'));
    t.is(types.at(-1), 'response.completed');
    const call = first.output.find((item) => item.type === 'function_call');
    if (call?.type !== 'function_call') return t.fail('a function_call item');
    const done = events.find((e) => e.type === 'response.function_call_arguments.done');
    t.is(done?.type === 'response.function_call_arguments.done' ? done.arguments : undefined, call.arguments);
    const deltas = events.flatMap((e) => (e.type === 'response.function_call_arguments.delta' ? [e.delta] : []));
    t.is(deltas.join(''), call.arguments, 'the streamed argument fragments add up to the arguments');
    t.deepEqual(Object.keys(JSON.parse(call.arguments)), ['city']);
    const completed = events.at(-1) as Extract<ResponseStreamEvent, { type: 'response.completed' }>;
    assertFitsOpenAI(t, 'Response', completed.response);
    t.true(completed.response.usage!.output_tokens > 0);
    t.true((completed.response.usage as unknown as { cost: number }).cost > 0);

    const textEvents: ResponseStreamEvent[] = [];
    const second = client.responses.stream({
      model,
      previous_response_id: first.id,
      input: [{ type: 'function_call_output', call_id: call.call_id, output: 'rain' }],
    });
    second.on('event', (event) => textEvents.push(event));
    const final = await second.finalResponse();
    for (const event of textEvents) assertEvent(t, event);
    t.is(final.output_text, 'Tool result received: rain');
    t.deepEqual(
      [...new Set(textEvents.map((e) => e.type))],
      [
        'response.created',
        'response.in_progress',
        'response.output_item.added',
        'response.content_part.added',
        'response.output_text.delta',
        'response.output_text.done',
        'response.content_part.done',
        'response.output_item.done',
        'response.completed',
      ],
    );
    const deltas2 = textEvents.flatMap((e) => (e.type === 'response.output_text.delta' ? [e.delta] : []));
    t.true(deltas2.length > 1, 'the text comes in several deltas');
    t.is(deltas2.join(''), final.output_text);
    const stored = await client.responses.retrieve(final.id);
    t.is(stored.output_text, final.output_text);
    t.is(stored.status, 'completed');
  });

  test.serial(`${type}: text.format json_schema answers JSON fitting the schema`, async (t) => {
    const response = await client.responses.create({
      model,
      input: 'Lyon',
      text: {
        format: {
          type: 'json_schema',
          name: 'city',
          strict: true,
          schema: {
            type: 'object',
            properties: { city: { type: 'string' }, population: { type: 'integer' } },
            required: ['city', 'population'],
            additionalProperties: false,
          },
        },
      },
    });
    assertFitsOpenAI(t, 'Response', response);
    const parsed = JSON.parse(response.output_text) as Json;
    t.is(typeof parsed.city, 'string');
    t.true(Number.isInteger(parsed.population));
    t.like(response.text, { format: { type: 'json_schema', name: 'city' } });
  });

  test.serial(`${type}: max_output_tokens reached → status incomplete (max_output_tokens)`, async (t) => {
    const response = await client.responses.create({
      model,
      input: 'say a lot '.repeat(5),
      max_output_tokens: 3,
      store: false,
    });
    assertFitsOpenAI(t, 'Response', response);
    t.is(response.status, 'incomplete');
    t.deepEqual(response.incomplete_details, { reason: 'max_output_tokens' });
    t.is(response.max_output_tokens, 3);
    const upstream = bed.mock.requests.at(-1)!.body as Json;
    t.true(upstream.max_tokens === 3 || upstream.max_completion_tokens === 3);
  });
}

test.serial('dashscope: responses.create with a string input', async (t) => {
  const { data, response } = await client.responses.create({ model: DASHSCOPE_MODEL, input: 'hello there' }).withResponse();
  assertFitsOpenAI(t, 'Response', data);
  t.is(data.output_text, 'Hello! You said: hello there');
  t.is(bed.mock.requests.at(-1)!.path, '/compatible-mode/v1/chat/completions');
  await assertBilled(t, response.headers.get('x-request-id'), data);
});

test.serial(
  'dashscope: reasoning.effort streams as enable_thinking with a reasoning item; a non-stream call asks no thinking',
  async (t) => {
    const events: ResponseStreamEvent[] = [];
    const stream = client.responses.stream({ model: DASHSCOPE_MODEL, input: 'think', reasoning: { effort: 'medium' } });
    stream.on('event', (event) => events.push(event));
    const final = await stream.finalResponse();
    for (const event of events) assertEvent(t, event);
    const sent = bed.mock.requests.at(-1)!.body as Json;
    t.is(sent.enable_thinking, true, JSON.stringify(sent));
    t.false('reasoning_effort' in sent);
    t.deepEqual(
      final.output.map((item) => item.type),
      ['reasoning', 'message'],
    );
    t.is(final.output_text, 'Hello! You said: think');

    const response = await client.responses.create({ model: DASHSCOPE_MODEL, input: 'think', reasoning: { effort: 'medium' } });
    assertFitsOpenAI(t, 'Response', response);
    const sentPlain = bed.mock.requests.at(-1)!.body as Json;
    t.false('enable_thinking' in sentPlain || 'reasoning_effort' in sentPlain, JSON.stringify(sentPlain));
    t.is(response.output_text, 'Hello! You said: think');
  },
);

test.serial('prompt cache: a repeated long prefix is billed at the cache-read price and shown as cached_tokens', async (t) => {
  const channels = await bed.admin.call<{ data: Array<{ id: number; name: string }> }>('GET', '/admin/api/channels');
  await bed.admin.model('cached-mini', {
    channel_id: channels.data.find((c) => c.name === 'openai')!.id,
    upstream_model: 'gpt-4o-mini',
    input_price_per_1m: 0.15,
    output_price_per_1m: 0.6,
    cache_read_price_per_1m: 0.075,
    cache_write_price_per_1m: 0.15,
  });
  const instructions = 'You are a careful assistant who answers briefly. '.repeat(200);
  const answers: Array<{ data: Response; requestId: string | null }> = [];
  for (const input of ['first question', 'second question']) {
    const { data, response } = await client.responses.create({ model: 'cached-mini', instructions, input }).withResponse();
    answers.push({ data, requestId: response.headers.get('x-request-id') });
  }
  t.is(answers[0].data.usage!.input_tokens_details.cached_tokens, 0);
  t.true(answers[1].data.usage!.input_tokens_details.cached_tokens >= 1024, 'the instructions came from the cache');
  for (const { data, requestId } of answers) await assertBilled(t, requestId, data);
  const row = await ledgerOf(answers[1].requestId!);
  t.is(row.cached_tokens, answers[1].data.usage!.input_tokens_details.cached_tokens, 'the ledger row keeps the cached count');
});

test.serial('input items: messages with input_text and input_image parts, developer role, reasoning effort forwarded', async (t) => {
  const response = await client.responses.create({
    model: CHAT_MODELS.openai,
    reasoning: { effort: 'low' },
    input: [
      { role: 'developer', content: 'Be brief.' },
      {
        role: 'user',
        content: [
          { type: 'input_text', text: 'What is in this picture?' },
          { type: 'input_image', image_url: 'data:image/png;base64,iVBORw0KGgo=', detail: 'low' },
        ],
      },
    ],
  });
  assertFitsOpenAI(t, 'Response', response);
  t.is(response.output_text, 'Hello! You said: What is in this picture?');
  const sent = bed.mock.requests.at(-1)!.body as { messages: Json[]; reasoning_effort?: string };
  t.deepEqual(sent.messages, [
    { role: 'system', content: 'Be brief.' },
    {
      role: 'user',
      content: [
        { type: 'text', text: 'What is in this picture?' },
        { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=', detail: 'low' } },
      ],
    },
  ]);
  t.is(sent.reasoning_effort, 'low');
});

test.serial('an image for a model without vision: 400 naming input, before any charge', async (t) => {
  await bed.admin.model('text-only', {
    channel_id: (await bed.admin.call<{ data: Array<{ id: number; name: string }> }>('GET', '/admin/api/channels')).data.find(
      (c) => c.name === 'openai',
    )!.id,
    upstream_model: 'gpt-4o-mini',
    input_price_per_1m: 0.15,
    output_price_per_1m: 0.6,
    vision: false,
  });
  const error = await client.responses
    .create({
      model: 'text-only',
      input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'https://example.com/a.png', detail: 'auto' }] }],
    })
    .catch((e: unknown) => e);
  t.true(error instanceof OpenAI.BadRequestError, String(error));
  const apiError = error as InstanceType<typeof OpenAI.BadRequestError>;
  t.is(apiError.param, 'input');
  t.regex(apiError.message, /input_image/);
});

test.serial(
  'the hold counts the previous conversation: a continuation the balance cannot cover is 402, a fresh request is not',
  async (t) => {
    const customer = await newCustomer(bed.admin, 'hold-responses@example.com', '1');
    const long = 'lorem ipsum dolor sit amet '.repeat(4_000);
    const first = await customer.client.responses.create({ model: CHAT_MODELS.openai, input: long, max_output_tokens: 16 });
    const priorCostUsd = (first.usage!.input_tokens * 0.15) / 1e6;
    // leave the account half of what the previous conversation alone costs as input
    const balance = nano((await bed.admin.getUser(customer.userId)).balance_usd);
    const target = nano((priorCostUsd / 2).toFixed(9));
    await bed.admin.call('POST', `/admin/api/users/${customer.userId}/adjust`, {
      amount_usd: `-${formatNano(balance - target)}`,
      note: 'test: leave too little for the continuation',
    });
    const continued = await customer.client.responses
      .create({ model: CHAT_MODELS.openai, previous_response_id: first.id, input: 'and?', max_output_tokens: 16 })
      .catch((e: unknown) => e);
    t.true(continued instanceof OpenAI.APIError && continued.status === 402, String(continued));
    t.is((continued as InstanceType<typeof OpenAI.APIError>).code, 'insufficient_balance');
    const fresh = await customer.client.responses.create({ model: CHAT_MODELS.openai, input: 'and?', max_output_tokens: 16 });
    t.is(fresh.status, 'completed');
  },
);

test.serial('another account cannot continue or read a stored response: 404 not_found', async (t) => {
  const mine = await client.responses.create({ model: CHAT_MODELS.openai, input: 'secret plans' });
  const other = await newCustomer(bed.admin, 'other-responses@example.com', '5');
  const continued = await fetch(`${bed.baseURL}/responses`, {
    method: 'POST',
    headers: { authorization: `Bearer ${other.apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: CHAT_MODELS.openai, input: 'go on', previous_response_id: mine.id }),
  });
  t.is(continued.status, 404);
  const body = (await continued.json()) as { error: Json };
  t.like(body.error, { code: 'not_found', type: 'invalid_request_error', param: 'previous_response_id' });
  assertFitsOpenAI(t, 'ErrorResponse', body);

  const read = await fetch(`${bed.baseURL}/responses/${mine.id}`, { headers: { authorization: `Bearer ${other.apiKey}` } });
  t.is(read.status, 404);
  t.like(((await read.json()) as { error: Json }).error, { code: 'not_found' });
  const spent = nano((await bed.admin.getUser(other.userId)).balance_usd);
  t.is(spent, nano('5'), 'the refused request cost nothing');

  // the owner still reads it
  t.is((await client.responses.retrieve(mine.id)).id, mine.id);
});

test.serial('store: false keeps nothing: GET and previous_response_id answer 404', async (t) => {
  const response = await client.responses.create({ model: CHAT_MODELS.anthropic, input: 'forget me', store: false });
  t.is((response as unknown as Json).store, false);
  const error = await client.responses.retrieve(response.id).catch((e: unknown) => e);
  t.true(error instanceof OpenAI.NotFoundError);
  const continued = await client.responses
    .create({ model: CHAT_MODELS.anthropic, input: 'go on', previous_response_id: response.id })
    .catch((e: unknown) => e);
  t.true(continued instanceof OpenAI.NotFoundError);
  t.is((continued as InstanceType<typeof OpenAI.NotFoundError>).param, 'previous_response_id');
});

test.serial('built-in tools are refused with 400 bad_request naming the tool, before any charge', async (t) => {
  const before = await bed.spent();
  for (const tool of [
    { type: 'web_search' },
    { type: 'file_search', vector_store_ids: ['vs_1'] },
    { type: 'code_interpreter', container: { type: 'auto' } },
  ]) {
    const error = await client.responses
      .create({ model: CHAT_MODELS.openai, input: 'search', tools: [tool] as never })
      .catch((e: unknown) => e);
    t.true(error instanceof OpenAI.BadRequestError, tool.type);
    const apiError = error as InstanceType<typeof OpenAI.BadRequestError>;
    t.is(apiError.code, 'bad_request');
    t.is(apiError.param, 'tools');
    t.true(apiError.message.includes(tool.type), apiError.message);
  }
  t.is(await bed.spent(), before);
});

test.serial('a stream failing after it started ends with an error event (ResponseErrorEvent) the SDK raises', async (t) => {
  bed.mock.setBehavior('sk-openai-clients', { midStreamError: true });
  try {
    const events: ResponseStreamEvent[] = [];
    const stream = client.responses.stream({ model: CHAT_MODELS.openai, input: 'this will break' });
    stream.on('event', (event) => events.push(event));
    const error = await stream.finalResponse().catch((e: unknown) => e);
    t.true(error instanceof OpenAI.APIError, String(error));
    t.is(events[0]?.type, 'response.created', 'the stream had started');

    const raw = await fetch(`${bed.baseURL}/responses`, {
      method: 'POST',
      headers: { authorization: `Bearer ${bed.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: CHAT_MODELS.openai, input: 'this will break', stream: true }),
    });
    t.is(raw.status, 200);
    const frames = (await raw.text()).split('\n\n').filter((f) => f.startsWith('event: '));
    const last = frames.at(-1)!;
    t.true(last.startsWith('event: error\n'), last);
    const data = JSON.parse(last.slice(last.indexOf('data: ') + 6)) as Json;
    assertFitsOpenAI(t, 'ResponseErrorEvent', data);
    t.is(data.sequence_number, frames.length - 1);
    t.like(data, { type: 'error', code: 'upstream_error', error: { code: 'upstream_error', type: 'upstream_error' } });
    t.false(frames.some((f) => f.includes('[DONE]')));
  } finally {
    bed.mock.setBehavior('sk-openai-clients', {});
  }
});

test.serial(
  'a streamed refusal is a refusal part with its events; without upstream usage its text is billed as estimated output',
  async (t) => {
    const refusal = "I'm sorry, but I can't help with that request.";
    bed.mock.setBehavior('sk-openai-clients', { refusal, omitUsage: true });
    try {
      const events: ResponseStreamEvent[] = [];
      const stream = client.responses.stream({ model: CHAT_MODELS.openai, input: 'something forbidden' });
      stream.on('event', (event) => events.push(event));
      const final = await stream.finalResponse();
      for (const event of events) assertEvent(t, event);
      t.is(final.status, 'completed');
      t.is(final.output.length, 1);
      t.like(final.output[0], { type: 'message', content: [{ type: 'refusal', refusal }] });
      t.deepEqual(
        [...new Set(events.map((e) => e.type))],
        [
          'response.created',
          'response.in_progress',
          'response.output_item.added',
          'response.content_part.added',
          'response.refusal.delta',
          'response.refusal.done',
          'response.content_part.done',
          'response.output_item.done',
          'response.completed',
        ],
      );
      t.is(events.flatMap((e) => (e.type === 'response.refusal.delta' ? [e.delta] : [])).join(''), refusal);
      const row = await until(
        async () => (await bed.admin.usage(`user_id=${bed.userId}`)).data.find((r) => r.request_id === `req_${final.id.slice(5)}`),
        (r) => r !== undefined,
        8_000,
        50,
      );
      t.like(row, { estimated: true });
      t.true((row?.completion_tokens as number) >= 10, 'the refusal text counts as produced output');
      t.is(final.usage?.output_tokens, row?.completion_tokens as number);

      // the chat stream relays the refusal deltas as the upstream sent them
      const chat = await client.chat.completions.create({
        model: CHAT_MODELS.openai,
        messages: [{ role: 'user', content: 'something forbidden' }],
        stream: true,
      });
      let relayed = '';
      for await (const chunk of chat) {
        relayed += chunk.choices[0]?.delta.refusal ?? '';
        t.falsy(chunk.choices[0]?.delta.content);
      }
      t.is(relayed, refusal);
    } finally {
      bed.mock.setBehavior('sk-openai-clients', {});
    }
  },
);

test.serial('stream tool-call chunks without index make one function_call item', async (t) => {
  bed.mock.setBehavior('sk-openai-clients', { toolCallsWithoutIndex: true });
  try {
    const events: ResponseStreamEvent[] = [];
    const stream = client.responses.stream({ model: CHAT_MODELS.openai, input: 'Weather in Paris?', tools: [weather] });
    stream.on('event', (event) => events.push(event));
    const final = await stream.finalResponse();
    for (const event of events) assertEvent(t, event);
    t.deepEqual(
      final.output.map((item) => item.type),
      ['function_call'],
    );
    const call = final.output[0];
    if (call?.type !== 'function_call') return t.fail('a function_call item');
    t.is(call.name, 'get_weather');
    t.regex(call.call_id, /^call_/);
    t.deepEqual(Object.keys(JSON.parse(call.arguments)), ['city']);
  } finally {
    bed.mock.setBehavior('sk-openai-clients', {});
  }
});

test.serial('a Claude tool call without input streams arguments "{}"', async (t) => {
  bed.mock.setBehavior('sk-ant-clients', { emptyToolInput: true });
  try {
    const events: ResponseStreamEvent[] = [];
    const now: FunctionTool = { type: 'function', name: 'get_time', parameters: { type: 'object', properties: {} }, strict: false };
    const stream = client.responses.stream({ model: CHAT_MODELS.anthropic, input: 'What time is it?', tools: [now] });
    stream.on('event', (event) => events.push(event));
    const final = await stream.finalResponse();
    for (const event of events) assertEvent(t, event);
    const done = events.find((e) => e.type === 'response.function_call_arguments.done');
    t.is(done?.type === 'response.function_call_arguments.done' ? done.arguments : undefined, '{}');
    t.like(final.output[0], { type: 'function_call', name: 'get_time', arguments: '{}' });
  } finally {
    bed.mock.setBehavior('sk-ant-clients', {});
  }
});

test.serial('an error before the stream started is an ordinary HTTP error', async (t) => {
  const response = await fetch(`${bed.baseURL}/responses`, {
    method: 'POST',
    headers: { authorization: `Bearer ${bed.apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'no-such-model', input: 'hi', stream: true }),
  });
  t.is(response.status, 404);
  t.like(((await response.json()) as { error: Json }).error, { code: 'model_not_found' });
});

test.serial(
  'reasoning.effort on an OpenAI-type channel: a reasoning item before the message, streamed as reasoning_text events',
  async (t) => {
    const response = await client.responses.create({ model: CHAT_MODELS.openai, input: 'think first', reasoning: { effort: 'low' } });
    assertFitsOpenAI(t, 'Response', response);
    t.deepEqual(
      response.output.map((item) => item.type),
      ['reasoning', 'message'],
    );
    t.true(response.usage!.output_tokens_details.reasoning_tokens > 0);
    t.like(response.reasoning, { effort: 'low' });

    const events: ResponseStreamEvent[] = [];
    const stream = client.responses.stream({ model: CHAT_MODELS.openai, input: 'think first', reasoning: { effort: 'low' } });
    stream.on('event', (event) => events.push(event));
    const final = await stream.finalResponse();
    for (const event of events) assertEvent(t, event);
    const thought = events.flatMap((e) => (e.type === 'response.reasoning_text.delta' ? [e.delta] : [])).join('');
    const item = final.output[0];
    t.is(item.type, 'reasoning');
    t.is(item.type === 'reasoning' ? item.content?.[0]?.text : undefined, thought);
    t.true(thought.length > 0);
    t.is(final.output_text, 'Hello! You said: think first');
  },
);

test.serial(
  'a client that leaves a stream cancels the upstream call; the request is billed once, for what was produced, and kept cancelled',
  async (t) => {
    bed.mock.setBehavior('sk-openai-clients', { chunkDelayMs: 100, reply: Array(80).fill('slow').join(' ') });
    try {
      const closedBefore = bed.mock.stats('sk-openai-clients').closedEarly;
      const rowsBefore = (await bed.admin.usage(`user_id=${bed.userId}`)).data.length;
      const controller = new AbortController();
      const stream = client.responses.stream({ model: CHAT_MODELS.openai, input: 'go slowly' }, { signal: controller.signal });
      let deltas = 0;
      let seen = '';
      let id = '';
      stream.on('response.created', (event) => {
        id = event.response.id;
      });
      stream.on('response.output_text.delta', (event) => {
        seen += event.delta;
        if (++deltas === 2) controller.abort();
      });
      await stream.finalResponse().catch(() => undefined);
      t.is(deltas, 2);
      const deadline = Date.now() + 8_000; // for the three waits together
      const left = () => deadline - Date.now();
      const closedEarly = await until(
        () => bed.mock.stats('sk-openai-clients').closedEarly,
        (n) => n !== closedBefore,
        left(),
        50,
      );
      t.is(closedEarly, closedBefore + 1, 'the upstream call was aborted');
      const rows = await until(
        async () => (await bed.admin.usage(`user_id=${bed.userId}`)).data,
        (r) => r.length !== rowsBefore,
        left(),
        50,
      );
      t.is(rows.length, rowsBefore + 1, 'one ledger row');
      const row = rows[0];
      t.is(row.kind, 'charge');
      t.true(
        (row.completion_tokens as number) > 0 && (row.completion_tokens as number) < 40,
        'billed for what was produced, not the whole reply',
      );
      const held = await until(
        async () => (await bed.admin.getUser(bed.userId)).held_usd,
        (h) => h === '0',
        left(),
        50,
      );
      t.is(held, '0', 'nothing stays held');

      // what it was billed for is kept: retrievable, and a conversation to continue
      const kept = await client.responses.retrieve(id);
      assertFitsOpenAI(t, 'Response', kept, 'the cancelled response');
      t.like(kept, { id, status: 'cancelled', error: null });
      t.is((kept.output[0] as { status?: string } | undefined)?.status, 'incomplete');
      t.true(kept.output_text.startsWith(seen) && kept.output_text.length < 80 * 5, 'the text produced before the cut');
      t.is(kept.usage?.output_tokens, row.completion_tokens as number);
      t.is(nano((kept.usage as unknown as { cost: number }).cost), -nano(String(row.amount_usd)));
      const next = await client.responses.create({ model: CHAT_MODELS.openai, previous_response_id: id, input: 'go on' });
      t.is(next.status, 'completed');
    } finally {
      bed.mock.setBehavior('sk-openai-clients', {});
    }
  },
);

test.serial('a response cut inside a function call is continued without that call (its arguments are half JSON)', async (t) => {
  bed.mock.setBehavior('sk-ant-clients', { chunkDelayMs: 5, midStreamResetAfter: 2 });
  try {
    const events: ResponseStreamEvent[] = [];
    const stream = await client.responses.create({
      model: CHAT_MODELS.anthropic,
      input: 'Weather in Lyon?',
      tools: [weather],
      stream: true,
    });
    await (async () => {
      for await (const event of stream) events.push(event);
    })().catch(() => undefined);
    const created = events.find((e) => e.type === 'response.created');
    const id = created?.type === 'response.created' ? created.response.id : 'none';
    const kept = await until(
      () => client.responses.retrieve(id).catch(() => undefined),
      (r) => r !== undefined,
      8_000,
      50,
    );
    if (!kept) return t.fail('the billed response was not kept');
    const call = kept.output.find((item) => item.type === 'function_call');
    t.like(call, { status: 'incomplete' }, 'the stored response shows the call as it was cut');
    bed.mock.setBehavior('sk-ant-clients', {});
    const next = await client.responses.create({ model: CHAT_MODELS.anthropic, previous_response_id: id, input: 'Never mind. Say hi.' });
    t.is(next.status, 'completed');
  } finally {
    bed.mock.setBehavior('sk-ant-clients', {});
  }
});

test.serial('a stream the upstream cut after some output is billed for it and kept failed, with the error its client got', async (t) => {
  bed.mock.setBehavior('sk-openai-clients', { chunkDelayMs: 5, midStreamResetAfter: 3, reply: Array(20).fill('cut').join(' ') });
  try {
    const rowsBefore = (await bed.admin.usage(`user_id=${bed.userId}`)).data.length;
    const events: ResponseStreamEvent[] = [];
    const stream = await client.responses.create({ model: CHAT_MODELS.openai, input: 'get cut', stream: true });
    const failure = await (async () => {
      for await (const event of stream) events.push(event);
    })().then(
      () => undefined,
      (err: unknown) => err as Error,
    );
    t.true(failure instanceof OpenAI.APIError, String(failure));
    const created = events.find((e) => e.type === 'response.created');
    const id = created?.type === 'response.created' ? created.response.id : 'none';
    const kept = await until(
      () => client.responses.retrieve(id).catch(() => undefined),
      (r) => r !== undefined,
      8_000,
      50,
    );
    if (!kept) return t.fail('the billed response was not kept');
    assertFitsOpenAI(t, 'Response', kept, 'the failed response');
    t.like(kept, { id, status: 'failed' });
    t.is(kept.error?.code, 'server_error');
    t.true(kept.error !== null && kept.error.message.length > 0 && String(failure?.message).includes(kept.error.message), failure?.message);
    t.true(kept.output_text.length > 0 && (kept.output[0] as { status?: string } | undefined)?.status === 'incomplete');
    const rows = (await bed.admin.usage(`user_id=${bed.userId}`)).data;
    t.is(rows.length, rowsBefore + 1, 'one ledger row');
    t.like(rows[0], { kind: 'charge', completion_tokens: kept.usage?.output_tokens });
  } finally {
    bed.mock.setBehavior('sk-openai-clients', {});
  }
});
