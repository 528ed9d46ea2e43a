import test from 'ava';
import { toAnthropicRequest } from '../src/upstream/providers/anthropic/request.js';
import { styleOf, toChatCompletion } from '../src/upstream/providers/anthropic/response.js';
import { StreamTranslator } from '../src/upstream/providers/anthropic/stream.js';
import type { ChatChunk } from '../src/upstream/providers/types.js';

// response_format and cache_control through the Anthropic translation: pure functions, no processes.

type Json = Record<string, any>;
const user = [{ role: 'user', content: 'Ada is 36' }];
const personSchema = {
  type: 'object',
  properties: { name: { type: 'string' }, age: { type: 'integer', minimum: 0 } },
  required: ['name', 'age'],
  additionalProperties: false,
};
const jsonSchema = (schema: unknown, extra: Json = {}) => ({
  response_format: { type: 'json_schema', json_schema: { name: 'person', strict: true, schema, ...extra } },
});

test('json_schema becomes one forced tool whose input_schema is the schema itself (strict or not)', (t) => {
  for (const strict of [true, false]) {
    const body = {
      messages: user,
      response_format: { type: 'json_schema', json_schema: { name: 'person', strict, schema: personSchema } },
    };
    const out = toAnthropicRequest(body, 'm', false) as Json;
    t.is(out.tools.length, 1);
    t.is(out.tools[0].name, 'json_response');
    t.is(out.tools[0].input_schema, personSchema, 'the schema is passed as is, not rewritten');
    t.regex(out.tools[0].description, /person/);
    t.false('strict' in out.tools[0], 'no strict flag: older Claude models refuse it');
    t.deepEqual(out.tool_choice, { type: 'tool', name: 'json_response' });
    t.false('response_format' in out);
  }
});

test('a $schema declaration (the AI SDK sends draft-07) is left out of every input_schema', (t) => {
  const declared = { $schema: 'http://json-schema.org/draft-07/schema#', ...personSchema };
  const out = toAnthropicRequest(
    {
      messages: user,
      tools: [{ type: 'function', function: { name: 'f', parameters: declared } }],
      ...jsonSchema(declared),
    },
    'm',
    false,
  ) as Json;
  t.deepEqual(
    out.tools.map((tool: Json) => tool.input_schema),
    [personSchema, personSchema],
  );
});

test('json_object becomes a forced tool taking any object', (t) => {
  const out = toAnthropicRequest({ messages: user, response_format: { type: 'json_object' } }, 'm', false) as Json;
  t.deepEqual(out.tools[0].input_schema, { type: 'object' });
  t.deepEqual(out.tool_choice, { type: 'tool', name: 'json_response' });
  t.is(toAnthropicRequest({ messages: user, response_format: { type: 'text' } }, 'm', false).tools, undefined);
});

test('a schema whose root is not an object is wrapped in {value}, its $defs kept at the root', (t) => {
  const list = { type: 'array', items: { $ref: '#/$defs/item' }, $defs: { item: { type: 'string' } } };
  const out = toAnthropicRequest({ messages: user, ...jsonSchema(list) }, 'm', false) as Json;
  t.deepEqual(out.tools[0].input_schema, {
    type: 'object',
    properties: { value: { type: 'array', items: { $ref: '#/$defs/item' } } },
    required: ['value'],
    $defs: { item: { type: 'string' } },
  });
  const style = styleOf({ messages: user, ...jsonSchema(list) });
  const answer = toChatCompletion(
    { id: 'msg_1', content: [{ type: 'tool_use', id: 't', name: 'json_response', input: { value: ['a', 'b'] } }], stop_reason: 'tool_use' },
    style,
  ) as Json;
  t.is(answer.choices[0].message.content, '["a","b"]');
  t.is(answer.choices[0].finish_reason, 'stop');
});

test("with the client's own tools: any tool may be called, the JSON tool gets a free name", (t) => {
  const tools = [{ type: 'function', function: { name: 'json_response', parameters: { type: 'object', properties: {} } } }];
  const body = { messages: user, tools, ...jsonSchema(personSchema) };
  const out = toAnthropicRequest(body, 'm', false) as Json;
  t.deepEqual(
    out.tools.map((tool: Json) => tool.name),
    ['json_response', 'json_response_1'],
  );
  t.deepEqual(out.tool_choice, { type: 'any' });
  t.deepEqual(toAnthropicRequest({ ...body, tool_choice: 'none' }, 'm', false).tool_choice, { type: 'tool', name: 'json_response_1' });
  t.deepEqual(
    toAnthropicRequest({ ...body, tool_choice: { type: 'function', function: { name: 'json_response' } } }, 'm', false).tool_choice,
    {
      type: 'tool',
      name: 'json_response',
    },
  );

  const style = styleOf(body);
  const called = toChatCompletion(
    {
      id: 'msg_2',
      content: [{ type: 'tool_use', id: 'toolu_9', name: 'json_response', input: { q: 1 } }],
      stop_reason: 'tool_use',
    },
    style,
  ) as Json;
  t.is(called.choices[0].finish_reason, 'tool_calls', "the client's tool named json_response is a tool call");
  t.is(called.choices[0].message.tool_calls[0].function.name, 'json_response');
  const answered = toChatCompletion(
    {
      id: 'msg_3',
      content: [{ type: 'tool_use', id: 'toolu_8', name: 'json_response_1', input: { name: 'Ada', age: 36 } }],
      stop_reason: 'tool_use',
    },
    style,
  ) as Json;
  t.deepEqual(answered.choices[0].message, { role: 'assistant', content: '{"name":"Ada","age":36}', refusal: null });
  t.is(answered.choices[0].finish_reason, 'stop');
});

test('non-stream JSON answer: the tool input is the content, a text preamble is dropped, max_tokens is length', (t) => {
  const style = styleOf({ messages: user, ...jsonSchema(personSchema) });
  const out = toChatCompletion(
    {
      id: 'msg_4',
      content: [
        { type: 'text', text: 'Here you go:' },
        { type: 'tool_use', id: 'toolu_1', name: 'json_response', input: { name: 'Ada', age: 36 } },
      ],
      stop_reason: 'tool_use',
      usage: { input_tokens: 10, output_tokens: 7 },
    },
    style,
  ) as Json;
  t.is(out.choices[0].message.content, '{"name":"Ada","age":36}');
  t.is(out.choices[0].message.tool_calls, undefined);
  t.is(out.choices[0].finish_reason, 'stop');
  t.is(out.usage.completion_tokens, 7);
  const cut = toChatCompletion(
    { id: 'msg_5', content: [{ type: 'tool_use', id: 'toolu_2', name: 'json_response', input: {} }], stop_reason: 'max_tokens' },
    style,
  ) as Json;
  t.is(cut.choices[0].finish_reason, 'length');
});

const streamOf = (style: ReturnType<typeof styleOf>, events: Json[]) => {
  const translator = new StreamTranslator(style);
  return events.flatMap((event) => translator.push(event as never)) as ChatChunk[];
};

const toolStream = (name: string, fragments: string[], stopReason = 'tool_use') => [
  { type: 'message_start', message: { id: 'msg_s', usage: { input_tokens: 12, output_tokens: 1 } } },
  { type: 'content_block_start', index: 0, content_block: { type: 'tool_use', id: 'toolu_s', name, input: {} } },
  ...fragments.map((partial_json) => ({ type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json } })),
  { type: 'content_block_stop', index: 0 },
  { type: 'message_delta', delta: { stop_reason: stopReason }, usage: { output_tokens: 9 } },
  { type: 'message_stop' },
];

test('stream JSON answer: the tool input streams as content deltas, finish_reason stop, usage as usual', (t) => {
  const chunks = streamOf(
    styleOf({ messages: user, ...jsonSchema(personSchema) }),
    toolStream('json_response', ['{"name":', '"Ada","age":36}']),
  );
  const deltas = chunks.map((c) => (c.choices as Json[])[0]?.delta);
  t.deepEqual(deltas, [{ role: 'assistant', content: '' }, { content: '{"name":' }, { content: '"Ada","age":36}' }, {}, undefined]);
  t.is((chunks.at(-2)!.choices as Json[])[0].finish_reason, 'stop');
  t.like(chunks.at(-1)!.usage, { prompt_tokens: 12, completion_tokens: 9 });
});

test('stream JSON answer with a wrapped schema: the value goes out whole when its block ends; cut short, what came', (t) => {
  const style = styleOf({ messages: user, ...jsonSchema({ type: 'array', items: { type: 'integer' } }) });
  const whole = streamOf(style, toolStream('json_response', ['{"val', 'ue": [1,', ' 2]}']));
  t.deepEqual(
    whole.map((c) => (c.choices as Json[])[0]?.delta?.content).filter((x) => x),
    ['[1,2]'],
  );
  const cut = streamOf(style, toolStream('json_response', ['{"value": [1,', ' 2'], 'max_tokens'));
  t.deepEqual(
    cut.map((c) => (c.choices as Json[])[0]?.delta?.content).filter((x) => x),
    ['[1, 2'],
  );
  t.is((cut.at(-2)!.choices as Json[])[0].finish_reason, 'length');
});

test('stream with client tools and a JSON format: a client tool call keeps its framing and finish_reason', (t) => {
  const tools = [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object' } } }];
  const chunks = streamOf(styleOf({ messages: user, tools, ...jsonSchema(personSchema) }), toolStream('lookup', ['{"q":1}']));
  t.like((chunks[1].choices as Json[])[0].delta, { tool_calls: [{ index: 0, id: 'toolu_s', function: { name: 'lookup' } }] });
  t.is((chunks.at(-2)!.choices as Json[])[0].finish_reason, 'tool_calls');
});

test('cache_control on content parts, messages, system parts, tool results and tools reaches the Anthropic body', (t) => {
  const mark = { type: 'ephemeral' };
  const long = { type: 'ephemeral', ttl: '1h' };
  const out = toAnthropicRequest(
    {
      messages: [
        { role: 'system', content: [{ type: 'text', text: 'Rules…', cache_control: long }] },
        { role: 'developer', content: 'Be brief.', cache_control: mark },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Look:', cache_control: mark },
            { type: 'image_url', image_url: { url: 'https://example.com/a.png' }, cache_control: mark },
          ],
        },
        { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }] },
        { role: 'tool', tool_call_id: 'c1', content: [{ type: 'text', text: 'result', cache_control: mark }] },
        { role: 'user', content: 'and now?', cache_control: mark },
      ],
      tools: [
        { type: 'function', function: { name: 'f', parameters: { type: 'object' } }, cache_control: mark },
        { type: 'function', function: { name: 'g', parameters: { type: 'object' }, cache_control: long } },
        { type: 'function', function: { name: 'h' } },
      ],
    },
    'm',
    false,
  ) as Json;
  t.deepEqual(out.system, [
    { type: 'text', text: 'Rules…', cache_control: long },
    { type: 'text', text: 'Be brief.', cache_control: mark },
  ]);
  t.deepEqual(out.messages[0].content, [
    { type: 'text', text: 'Look:', cache_control: mark },
    { type: 'image', source: { type: 'url', url: 'https://example.com/a.png' }, cache_control: mark },
  ]);
  t.deepEqual(out.messages[2].content[0], { type: 'tool_result', tool_use_id: 'c1', content: 'result', cache_control: mark });
  t.deepEqual(out.messages[2].content[1], { type: 'text', text: 'and now?', cache_control: mark });
  t.deepEqual(
    out.tools.map((tool: Json) => tool.cache_control),
    [mark, long, undefined],
  );
});
