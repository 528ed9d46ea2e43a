import test from 'ava';
import OpenAI from 'openai';
import { countTokens } from '../src/mock/text.js';
import { type Bed, startBed } from './helpers/bed.js';
import { newCustomer } from './helpers/customer.js';
import { costOf, nano } from './helpers/money.js';
import { collectToolCalls } from './helpers/stream.js';

// An `anthropic` channel on the mock upstream, called with the OpenAI SDK through real web + worker processes.
let bed: Bed;
let userId: number;
let client: OpenAI;
const MODEL = 'claude-sonnet-4-6';
const PRICES = { input: 3, output: 15 };
const SECRET = 'sk-ant-main-secret';

type AnthropicBody = {
  model: string;
  system?: unknown;
  messages: Array<{ role: string; content: Array<Record<string, unknown>> }>;
  max_tokens: number;
  [field: string]: unknown;
};
const lastUpstreamBody = () => bed.mock.requests.at(-1)!.body as AnthropicBody;

async function anthropicModel(id: string, channelName: string, secrets: string[]) {
  const channel = await bed.admin.channel(channelName, 'anthropic', bed.mock.url);
  for (const secret of secrets) await bed.admin.token(channel.id, secret, 4);
  await bed.admin.model(id, {
    channel_id: channel.id,
    upstream_model: 'claude-sonnet-4-6',
    input_price_per_1m: PRICES.input,
    output_price_per_1m: PRICES.output,
  });
}

test.before(async () => {
  bed = await startBed('anthropic');
  await anthropicModel(MODEL, 'anthropic-main', [SECRET]);
  ({ userId, client } = await newCustomer(bed.admin, 'anthropic@example.com', '5'));
});

test.after.always(() => bed?.stop());

const balance = async () => nano((await bed.admin.getUser(userId)).balance_usd);

test.serial(
  'non-stream text: OpenAI shape, system prompt sent as `system`, Anthropic headers, exact billing from Anthropic usage',
  async (t) => {
    const before = await balance();
    const { data, response } = await client.chat.completions
      .create({
        model: MODEL,
        messages: [
          { role: 'system', content: 'You are terse.' },
          { role: 'user', content: 'ping' },
        ],
        max_tokens: 64,
      })
      .withResponse();
    t.is(data.object, 'chat.completion');
    t.regex(data.id, /^chatcmpl-/);
    t.is(data.model, MODEL);
    t.is(data.choices[0].message.role, 'assistant');
    t.is(data.choices[0].message.content, 'Hello! You said: ping');
    t.is(data.choices[0].finish_reason, 'stop');

    const sent = bed.mock.requests.at(-1)!;
    t.is(sent.path, '/v1/messages');
    t.is(sent.headers['x-api-key'], SECRET);
    t.is(sent.headers['anthropic-version'], '2023-06-01');
    const body = sent.body as AnthropicBody;
    t.is(body.model, 'claude-sonnet-4-6');
    t.deepEqual(body.system, [{ type: 'text', text: 'You are terse.' }]);
    t.deepEqual(body.messages, [{ role: 'user', content: [{ type: 'text', text: 'ping' }] }]);
    t.is(body.max_tokens, 64);

    // The mock counts input over system + messages and output over its reply: these are Anthropic's numbers.
    const usage = data.usage!;
    t.is(usage.prompt_tokens, countTokens('You are terse.\nping'));
    t.is(usage.completion_tokens, countTokens('Hello! You said: ping'));
    t.is(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
    const cost = costOf(PRICES, usage.prompt_tokens, usage.completion_tokens);
    t.is(nano(response.headers.get('x-eastx-cost-usd')!), cost);
    t.is(before - (await balance()), cost);
    const row = (await bed.admin.usage(`user_id=${userId}`)).data.find((r) => r.request_id === response.headers.get('x-request-id'));
    t.is(row?.estimated, false);
  },
);

test.serial('stream text with include_usage: role chunk first, text deltas, one finish_reason, usage chunk, exact billing', async (t) => {
  const before = await balance();
  const stream = await client.chat.completions.create({
    model: MODEL,
    messages: [
      { role: 'developer', content: 'Be kind.' },
      { role: 'user', content: 'stream me please' },
    ],
    stream: true,
    stream_options: { include_usage: true },
    max_completion_tokens: 50,
  });
  const chunks: OpenAI.ChatCompletionChunk[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  t.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '' });
  t.is(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join(''), 'Hello! You said: stream me please');
  t.deepEqual(chunks.flatMap((c) => c.choices.map((ch) => ch.finish_reason)).filter(Boolean), ['stop']);
  t.true(chunks.every((c) => c.object === 'chat.completion.chunk' && c.model === MODEL && c.id === chunks[0].id));
  const last = chunks.at(-1)!;
  t.deepEqual(last.choices, []);
  const usage = last.usage as OpenAI.CompletionUsage & { cost: number };
  t.is(usage.prompt_tokens, countTokens('Be kind.\nstream me please'));
  t.is(usage.completion_tokens, countTokens('Hello! You said: stream me please'));
  const cost = costOf(PRICES, usage.prompt_tokens, usage.completion_tokens);
  t.is(nano(usage.cost), cost);
  t.is(before - (await balance()), cost);
  const body = lastUpstreamBody();
  t.is(body.stream, true);
  t.deepEqual(body.system, [{ type: 'text', text: 'Be kind.' }]);
  t.is(body.max_tokens, 50);
});

test.serial(
  'a streamed tool call reassembles to valid JSON; the follow-up `tool` turn reaches Anthropic as tool_use + tool_result',
  async (t) => {
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
    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'weather in Paris' }],
      tools,
      tool_choice: 'required',
      stream: true,
    });
    const { calls, finish } = await collectToolCalls(stream);
    t.is(finish, 'tool_calls');
    t.is(calls.length, 1);
    t.is(calls[0].type, 'function');
    t.is(calls[0].name, 'lookup');
    t.truthy(calls[0].id);
    t.deepEqual(JSON.parse(calls[0].args), { query: 'weather in Paris' });
    const first = lastUpstreamBody();
    t.deepEqual(first.tools, [
      {
        name: 'lookup',
        description: 'look something up',
        input_schema: (tools[0] as OpenAI.ChatCompletionFunctionTool).function.parameters,
      },
    ]);
    t.deepEqual(first.tool_choice, { type: 'any' });

    const followUp = await client.chat.completions.create({
      model: MODEL,
      tools,
      messages: [
        { role: 'user', content: 'weather in Paris' },
        {
          role: 'assistant',
          content: null,
          tool_calls: [{ id: calls[0].id!, type: 'function', function: { name: 'lookup', arguments: calls[0].args } }],
        },
        { role: 'tool', tool_call_id: calls[0].id!, content: 'sunny, 21C' },
      ],
    });
    t.is(followUp.choices[0].message.content, 'Tool result received: sunny, 21C');
    t.is(followUp.choices[0].finish_reason, 'stop');
    t.deepEqual(lastUpstreamBody().messages, [
      { role: 'user', content: [{ type: 'text', text: 'weather in Paris' }] },
      { role: 'assistant', content: [{ type: 'tool_use', id: calls[0].id, name: 'lookup', input: { query: 'weather in Paris' } }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: calls[0].id, content: 'sunny, 21C' }] },
    ]);
  },
);

test.serial('a tool call Claude makes without input streams arguments "{}", as the non-stream answer has them', async (t) => {
  bed.mock.setBehavior(SECRET, { emptyToolInput: true });
  try {
    const tools: OpenAI.ChatCompletionTool[] = [
      { type: 'function', function: { name: 'now', parameters: { type: 'object', properties: {} } } },
    ];
    const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'what time is it?' }];
    const stream = await client.chat.completions.create({ model: MODEL, messages, tools, stream: true });
    const { calls, finish } = await collectToolCalls(stream);
    t.is(finish, 'tool_calls');
    t.like(calls, [{ name: 'now', args: '{}' }]);
    const whole = await client.chat.completions.create({ model: MODEL, messages, tools });
    t.like(whole.choices[0].message.tool_calls, [{ function: { name: 'now', arguments: '{}' } }]);
  } finally {
    bed.mock.setBehavior(SECRET, {});
  }
});

test.serial('non-stream tool call: content null, tool_calls with JSON-string arguments; legacy functions get function_call', async (t) => {
  const data = await client.chat.completions.create({
    model: MODEL,
    messages: [{ role: 'user', content: 'find cats' }],
    tools: [{ type: 'function', function: { name: 'search', parameters: { type: 'object', properties: {} } } }],
  });
  const message = data.choices[0].message;
  t.is(message.content, null);
  t.is(data.choices[0].finish_reason, 'tool_calls');
  const call = message.tool_calls![0] as OpenAI.ChatCompletionMessageFunctionToolCall;
  t.is(call.type, 'function');
  t.is(call.function.name, 'search');
  t.deepEqual(JSON.parse(call.function.arguments), { query: 'find cats' });

  const legacy = await client.chat.completions.create({
    model: MODEL,
    messages: [{ role: 'user', content: 'find dogs' }],
    functions: [{ name: 'search', parameters: { type: 'object', properties: {} } }],
  });
  t.is(legacy.choices[0].finish_reason, 'function_call');
  t.deepEqual(JSON.parse(legacy.choices[0].message.function_call!.arguments), { query: 'find dogs' });
  t.is(legacy.choices[0].message.tool_calls, undefined);
});

test.serial('vision: a data-URL image reaches Anthropic as a base64 block, an http URL as a url block', async (t) => {
  await client.chat.completions.create({
    model: MODEL,
    max_tokens: 20,
    messages: [
      {
        role: 'user',
        content: [
          { type: 'text', text: 'what are these?' },
          { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
          { type: 'image_url', image_url: { url: 'https://example.com/cat.jpg', detail: 'low' } },
        ],
      },
    ],
  });
  t.deepEqual(lastUpstreamBody().messages[0].content, [
    { type: 'text', text: 'what are these?' },
    { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
    { type: 'image', source: { type: 'url', url: 'https://example.com/cat.jpg' } },
  ]);
});

test.serial('an upstream 529 on one token fails over to the next token of the channel, stream and non-stream', async (t) => {
  const ask = async (model: string, stream: boolean) => {
    const messages = [{ role: 'user' as const, content: 'hi' }];
    if (!stream) return (await client.chat.completions.create({ model, messages, max_tokens: 20 })).choices[0].message.content;
    let text = '';
    for await (const chunk of await client.chat.completions.create({ model, messages, max_tokens: 20, stream: true }))
      text += chunk.choices[0]?.delta?.content ?? '';
    return text;
  };
  for (const [model, stream] of [
    ['claude-failover-a', false],
    ['claude-failover-b', true],
  ] as const) {
    const overloaded = `sk-ant-${model}-1`;
    const healthy = `sk-ant-${model}-2`;
    await anthropicModel(model, model, [overloaded, healthy]);
    bed.mock.setBehavior(overloaded, { fail: { status: 529 } });
    // The pool starts at a random token: ask until the overloaded one has been tried (at most a few times).
    let asked = 0;
    while (bed.mock.stats(overloaded).calls === 0 && asked < 20) {
      t.is(await ask(model, stream), 'Hello! You said: hi', `stream=${stream}: every request succeeds`);
      asked++;
    }
    t.true(bed.mock.stats(overloaded).calls >= 1, 'the overloaded token was tried');
    t.is(bed.mock.stats(healthy).calls, asked, 'and every request was answered by the healthy token');
  }
});

test.serial('a mid-stream Anthropic error event reaches the client as an SSE error: the SDK throws', async (t) => {
  // A channel of its own: the overload cools its token down, as a 529 does (SPEC §4).
  const model = 'claude-midstream';
  const secret = 'sk-ant-midstream';
  await anthropicModel(model, model, [secret]);
  bed.mock.setBehavior(secret, { midStreamError: true });
  try {
    const stream = await client.chat.completions.create({
      model,
      messages: [{ role: 'user', content: 'tell me a long story' }],
      max_tokens: 50,
      stream: true,
    });
    let received = '';
    const err = await t.throwsAsync(
      async () => {
        for await (const chunk of stream) received += chunk.choices[0]?.delta?.content ?? '';
      },
      { instanceOf: OpenAI.APIError },
    );
    t.true(received.length > 0, 'content arrived before the error');
    t.is((err!.error as { code: string }).code, 'upstream_error');
    t.regex(err!.message, /Overloaded/);
    t.is(bed.mock.stats(secret).calls, 1, 'content had reached the client: no second attempt');
  } finally {
    bed.mock.setBehavior(secret, {});
  }
  t.is((await bed.admin.getUser(userId)).held_usd, '0');
});

test.serial("an upstream 400 becomes 502 upstream_error with upstream_status 400 and Anthropic's message, unbilled", async (t) => {
  const before = await balance();
  bed.mock.setBehavior(SECRET, { fail: { status: 400, message: 'messages.0.content: bad block', times: 1 } });
  const err = await t.throwsAsync(
    client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'x' }], max_tokens: 5 }),
    { instanceOf: OpenAI.APIError },
  );
  bed.mock.setBehavior(SECRET, {});
  t.is(err!.status, 502);
  const body = err!.error as { code: string; type: string; upstream_status: number; message: string };
  t.is(body.code, 'upstream_error');
  t.is(body.type, 'upstream_error');
  t.is(body.upstream_status, 400);
  t.regex(body.message, /bad block/);
  t.is(await balance(), before);
});

test.serial('fields an Anthropic model cannot honour get a 400 naming the field before anything reaches the upstream', async (t) => {
  const upstreamCalls = bed.mock.requests.length;
  const base = { model: MODEL, messages: [{ role: 'user' as const, content: 'x' }], max_tokens: 5 };
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ n: 2 }, /^n:/],
    [{ logprobs: true }, /^logprobs:/],
    [
      { response_format: { type: 'grammar', grammar: 'root ::= "x"' } },
      /^response_format\.type: must be one of text, json_object, json_schema/,
    ],
    [{ response_format: { type: 'json_schema' } }, /^response_format\.json_schema:/],
    [
      { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/tiff;base64,AAAA' } }] }] },
      /messages\.0\.content\.0\.image_url\.url/,
    ],
  ];
  for (const [extra, message] of cases) {
    const err = await t.throwsAsync(
      client.chat.completions.create({ ...base, ...extra } as OpenAI.ChatCompletionCreateParamsNonStreaming),
      { instanceOf: OpenAI.BadRequestError },
    );
    t.is((err!.error as { code: string }).code, 'bad_request');
    t.regex((err!.error as { message: string }).message, message);
  }
  const fine = await client.chat.completions.create({
    ...base,
    seed: 1,
    presence_penalty: 0.5,
    frequency_penalty: 0.5,
    logit_bias: { '1': 1 },
    n: 1,
    stop: 'zzz',
  });
  t.is(fine.choices.length, 1);
  t.deepEqual(lastUpstreamBody().stop_sequences, ['zzz']);
  t.is(bed.mock.requests.length, upstreamCalls + 1, 'only the acceptable request reached the upstream');
  t.is((await bed.admin.getUser(userId)).held_usd, '0');
});
