import test from 'ava';
import { ApiError } from '../src/http/errors.js';
import { StreamTranslator } from '../src/upstream/providers/anthropic/stream.js';
import {
  checkResponsesRequest,
  type ResponsesRequest,
  responsesRequestSchema,
  toChatRequest,
  withReasoningParam,
} from '../src/wire/responses/request.js';
import { assistantMessage, echoOf, responseFromCompletion, responsesUsage } from '../src/wire/responses/response.js';
import { errorEvent, ResponsesStreamEncoder } from '../src/wire/responses/stream.js';
import { producedTextOf } from '../workers/chat-usage.js';
import { assertFitsOpenAI } from './helpers/openapi.js';

// The pure translations between the Responses API and chat completions (src/wire/responses/).

type Json = Record<string, unknown>;
const parse = (body: Json) => responsesRequestSchema.parse({ model: 'm', ...body }) as ResponsesRequest;
const echo = (body: Json = {}) => echoOf(parse({ input: 'x', ...body }), 'req_0123abcd', 'public-model', 1_700_000_000_000);
const usage = {
  prompt_tokens: 10,
  completion_tokens: 5,
  total_tokens: 15,
  prompt_tokens_details: { cached_tokens: 4, cache_write_tokens: 1 },
  completion_tokens_details: { reasoning_tokens: 2 },
  cost: 0.000123,
};

test('input items become chat messages: instructions first, developer as system, tool calls joined to the assistant turn', (t) => {
  const body = parse({
    instructions: 'Be terse.',
    input: [
      { role: 'developer', content: 'Rules.' },
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Hi' }] },
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Let me look.', annotations: [] }] },
      { type: 'function_call', call_id: 'c1', name: 'f', arguments: '{"a":1}' },
      { type: 'function_call', call_id: 'c2', name: 'g', arguments: '{}' },
      { type: 'reasoning', id: 'rs_1', summary: [] },
      { type: 'function_call_output', call_id: 'c1', output: 'one' },
      { type: 'function_call_output', call_id: 'c2', output: [{ type: 'input_text', text: 'two' }] },
    ],
    tools: [{ type: 'function', name: 'f', parameters: { type: 'object' }, strict: true }],
    tool_choice: { type: 'function', name: 'f' },
    max_output_tokens: 77,
    temperature: 0.5,
    top_p: 0.9,
    reasoning: { effort: 'high' },
  });
  checkResponsesRequest(body);
  const prior = [{ role: 'user', content: 'earlier' }];
  const { chat, conversation } = toChatRequest(body, prior);
  t.deepEqual(chat.messages, [
    { role: 'system', content: 'Be terse.' },
    { role: 'user', content: 'earlier' },
    { role: 'system', content: 'Rules.' },
    { role: 'user', content: [{ type: 'text', text: 'Hi' }] },
    {
      role: 'assistant',
      content: 'Let me look.',
      tool_calls: [
        { id: 'c1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } },
        { id: 'c2', type: 'function', function: { name: 'g', arguments: '{}' } },
      ],
    },
    { role: 'tool', tool_call_id: 'c1', content: 'one' },
    { role: 'tool', tool_call_id: 'c2', content: 'two' },
  ]);
  t.is(conversation.length, 6, 'the stored conversation leaves the instructions out');
  t.like(chat, {
    max_tokens: 77,
    temperature: 0.5,
    top_p: 0.9,
    reasoning_effort: 'high',
    tool_choice: { type: 'function', function: { name: 'f' } },
    tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' }, strict: true } }],
  });
});

test('text.format maps to response_format', (t) => {
  const schema = { type: 'object', properties: {} };
  t.deepEqual(
    toChatRequest(parse({ input: 'x', text: { format: { type: 'json_schema', name: 'n', schema, strict: true } } })).chat.response_format,
    {
      type: 'json_schema',
      json_schema: { name: 'n', schema, strict: true },
    },
  );
  t.deepEqual(toChatRequest(parse({ input: 'x', text: { format: { type: 'json_object' } } })).chat.response_format, {
    type: 'json_object',
  });
  t.false('response_format' in toChatRequest(parse({ input: 'x', text: { format: { type: 'text' } } })).chat);
});

test('refusals: built-in tools, unknown items and parts, background, bad formats name their field', (t) => {
  const refusal = (body: Json) => {
    const error = t.throws(() => checkResponsesRequest(parse(body)), { instanceOf: ApiError }) as ApiError;
    t.is(error.code, 'bad_request');
    return error;
  };
  for (const type of [
    'web_search',
    'web_search_preview',
    'file_search',
    'code_interpreter',
    'computer_use_preview',
    'image_generation',
    'mcp',
  ]) {
    const error = refusal({ input: 'x', tools: [{ type }] });
    t.is(error.extra.param, 'tools');
    t.true(error.message.includes(type));
  }
  t.is(refusal({ input: 'x', tool_choice: { type: 'web_search' } }).extra.param, 'tool_choice');
  t.is(refusal({ input: [{ type: 'item_reference', id: 'x' }] }).extra.param, 'input');
  t.is(refusal({ input: [{ role: 'user', content: [{ type: 'input_file', file_id: 'f' }] }] }).extra.param, 'input');
  t.is(refusal({ input: [] }).extra.param, 'input');
  t.is(refusal({ input: 'x', background: true }).extra.param, 'background');
  t.is(refusal({ input: 'x', text: { format: { type: 'json_schema' } } }).extra.param, 'text.format');
});

test('a chat completion becomes a response object that fits OpenAI schema', (t) => {
  const response = responseFromCompletion(echo({ instructions: 'I', metadata: { a: 'b' } }), {
    choices: [
      {
        finish_reason: 'tool_calls',
        message: {
          role: 'assistant',
          content: 'Checking.',
          reasoning_content: 'thinking',
          tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: '{}' } }],
        },
      },
    ],
    usage,
  });
  assertFitsOpenAI(t, 'Response', response);
  t.like(response, { id: 'resp_0123abcd', status: 'completed', model: 'public-model', instructions: 'I', metadata: { a: 'b' } });
  t.deepEqual(
    (response.output as Json[]).map((item) => [item.type, item.id]),
    [
      ['reasoning', 'rs_0123abcd'],
      ['message', 'msg_0123abcd'],
      ['function_call', 'fc_0123abcd_0'],
    ],
  );
  t.deepEqual(response.usage, {
    input_tokens: 10,
    input_tokens_details: { cached_tokens: 4, cache_write_tokens: 1 },
    output_tokens: 5,
    output_tokens_details: { reasoning_tokens: 2 },
    total_tokens: 15,
    cost: 0.000123,
  });
  t.deepEqual(assistantMessage(response.output as Json[]), {
    role: 'assistant',
    content: 'Checking.',
    tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: '{}' } }],
  });
  const cut = responseFromCompletion(echo(), { choices: [{ finish_reason: 'length', message: { content: 'abc' } }], usage });
  t.like(cut, { status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' } });
  t.deepEqual(
    (cut.output as Json[]).map((item) => [item.type, item.status]),
    [['message', 'incomplete']],
    'the item the limit cut is incomplete too, as OpenAI marks it',
  );
  t.deepEqual(responsesUsage({}), {
    input_tokens: 0,
    input_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 },
    output_tokens: 0,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: 0,
  });
});

const chunk = (delta: Json, finish: string | null = null) => ({ choices: [{ index: 0, delta, finish_reason: finish }] });

test('stream: interleaved fragments of several tool calls each reach their own item; nothing is lost', (t) => {
  const encoder = new ResponsesStreamEncoder(echo());
  const events = [
    ...encoder.push(chunk({ role: 'assistant', content: '' })),
    ...encoder.push(chunk({ reasoning_content: 'hmm ' })),
    ...encoder.push(chunk({ reasoning_content: 'ok' })),
    ...encoder.push(chunk({ content: 'Two calls.' })),
    ...encoder.push(chunk({ tool_calls: [{ index: 0, id: 'call_a', type: 'function', function: { name: 'f', arguments: '' } }] })),
    ...encoder.push(chunk({ tool_calls: [{ index: 1, id: 'call_b', type: 'function', function: { name: 'g', arguments: '{"b"' } }] })),
    ...encoder.push(chunk({ tool_calls: [{ index: 0, function: { arguments: '{"a":' } }] })),
    ...encoder.push(chunk({ tool_calls: [{ index: 1, function: { arguments: ':2}' } }] })),
    ...encoder.push(chunk({ tool_calls: [{ index: 0, function: { arguments: '1}' } }] })),
    ...encoder.push(chunk({}, 'tool_calls')),
    ...encoder.push({ choices: [], usage }),
  ];
  const { events: closing, response } = encoder.finish(usage);
  const all = [...events, ...closing];
  t.deepEqual(
    all.map((e) => e.data.sequence_number),
    all.map((_, i) => i),
  );
  for (const { event, data } of all) {
    t.is(event, data.type as string);
    assertFitsOpenAI(t, 'ResponseStreamEvent', data, event);
  }
  t.deepEqual(
    all.slice(0, 2).map((e) => e.event),
    ['response.created', 'response.in_progress'],
  );
  const argsDone = all.filter((e) => e.event === 'response.function_call_arguments.done').map((e) => [e.data.name, e.data.arguments]);
  t.deepEqual(argsDone, [
    ['f', '{"a":1}'],
    ['g', '{"b":2}'],
  ]);
  const deltasOf = (index: number) =>
    all
      .filter((e) => e.event === 'response.function_call_arguments.delta' && e.data.output_index === index)
      .map((e) => e.data.delta)
      .join('');
  t.is(deltasOf(2), '{"a":1}');
  t.is(deltasOf(3), '{"b":2}');
  t.is(all.at(-1)?.event, 'response.completed');
  assertFitsOpenAI(t, 'Response', response);
  t.deepEqual(
    (response.output as Json[]).map((item) => item.type),
    ['reasoning', 'message', 'function_call', 'function_call'],
  );
  t.like((response.output as Json[])[0], { content: [{ type: 'reasoning_text', text: 'hmm ok' }] });
  t.like((response.output as Json[])[3], { call_id: 'call_b', name: 'g', arguments: '{"b":2}', status: 'completed' });
});

test('stream: tool-call fragments without index go to the call with their id, else to the last call; a new id opens a call', (t) => {
  const encoder = new ResponsesStreamEncoder(echo());
  const events = [
    ...encoder.push(chunk({ tool_calls: [{ id: 'call_A', type: 'function', function: { name: 'get_weather', arguments: '' } }] })),
    ...encoder.push(chunk({ tool_calls: [{ function: { arguments: '{"city":' } }] })),
    ...encoder.push(chunk({ tool_calls: [{ function: { arguments: '"Paris"' } }] })),
    ...encoder.push(chunk({ tool_calls: [{ id: 'call_B', type: 'function', function: { name: 'get_time', arguments: '{"tz":' } }] })),
    ...encoder.push(chunk({ tool_calls: [{ function: { arguments: '"CET"}' } }] })),
    ...encoder.push(chunk({ tool_calls: [{ id: 'call_A', function: { arguments: '}' } }] })),
    ...encoder.push(chunk({}, 'tool_calls')),
  ];
  const { events: closing, response } = encoder.finish(usage);
  for (const { event, data } of [...events, ...closing]) assertFitsOpenAI(t, 'ResponseStreamEvent', data, event);
  t.deepEqual(
    (response.output as Json[]).map((item) => [item.call_id, item.name, item.arguments]),
    [
      ['call_A', 'get_weather', '{"city":"Paris"}'],
      ['call_B', 'get_time', '{"tz":"CET"}'],
    ],
  );
  t.is(events.filter((e) => e.event === 'response.output_item.added').length, 2);
});

test('stream: a refusal is a refusal content part of the message, streamed with its own events, as the non-stream answer has it', (t) => {
  const encoder = new ResponsesStreamEncoder(echo());
  const chunks = [
    chunk({ role: 'assistant', content: '', refusal: null }),
    chunk({ refusal: "I'm sorry, " }),
    chunk({ refusal: 'I cannot help with that.' }),
    chunk({}, 'stop'),
  ];
  const events = chunks.flatMap((c) => encoder.push(c));
  const { events: closing, response } = encoder.finish(usage);
  const all = [...events, ...closing];
  for (const { event, data } of all) assertFitsOpenAI(t, 'ResponseStreamEvent', data, event);
  const schemas: Record<string, string> = {
    'response.content_part.added': 'ResponseContentPartAddedEvent',
    'response.refusal.delta': 'ResponseRefusalDeltaEvent',
    'response.refusal.done': 'ResponseRefusalDoneEvent',
    'response.content_part.done': 'ResponseContentPartDoneEvent',
  };
  for (const { event, data } of all) if (schemas[event]) assertFitsOpenAI(t, schemas[event], data, event);
  t.deepEqual(
    all.map((e) => e.event),
    [
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.refusal.delta',
      'response.refusal.delta',
      'response.refusal.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ],
  );
  const refusal = "I'm sorry, I cannot help with that.";
  t.like(all[3].data, { item_id: 'msg_0123abcd', output_index: 0, content_index: 0, part: { type: 'refusal', refusal: '' } });
  t.like(all[6].data, { content_index: 0, refusal });
  t.like(all[7].data, { part: { type: 'refusal', refusal } });
  const nonStream = responseFromCompletion(echo(), {
    choices: [{ finish_reason: 'stop', message: { role: 'assistant', content: null, refusal } }],
    usage,
  });
  t.like(response, { status: 'completed' });
  t.deepEqual(response.output, nonStream.output);
  assertFitsOpenAI(t, 'Response', response);
  t.is(chunks.map((c) => producedTextOf(c)).join(''), refusal, 'the refusal is produced output, billed when estimated');

  // text, then a refusal: two parts of the one message, in order
  const mixed = new ResponsesStreamEncoder(echo());
  mixed.push(chunk({ content: 'Well.' }));
  const refused = mixed.push(chunk({ refusal: 'No.' }));
  t.deepEqual(
    refused.map((e) => [e.event, e.data.content_index]),
    [
      ['response.content_part.added', 1],
      ['response.refusal.delta', 1],
    ],
  );
  t.deepEqual((mixed.finish(usage).response.output as Json[])[0].content, [
    { type: 'output_text', text: 'Well.', annotations: [], logprobs: [] },
    { type: 'refusal', refusal: 'No.' },
  ]);
});

test('stream: nothing before the first content; an empty answer still opens and completes; a length cut is incomplete', (t) => {
  const empty = new ResponsesStreamEncoder(echo());
  t.deepEqual(empty.push(chunk({ role: 'assistant' })), []);
  t.is(empty.emitted, 0, 'no event yet: a failure now can still fail over or answer an HTTP error');
  t.deepEqual(
    empty.finish(usage).events.map((e) => e.event),
    ['response.created', 'response.in_progress', 'response.completed'],
  );
  const cut = new ResponsesStreamEncoder(echo());
  cut.push(chunk({ content: 'abc' }));
  cut.push(chunk({}, 'length'));
  const { events, response } = cut.finish(usage);
  t.is(events.at(-1)?.event, 'response.incomplete');
  assertFitsOpenAI(t, 'ResponseIncompleteEvent', events.at(-1)?.data);
  t.like(response, { status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' } });
  const itemDone = events.filter((e) => e.event === 'response.output_item.done').map((e) => (e.data as { item: Json }).item.status);
  t.deepEqual(itemDone, ['incomplete']);
  t.deepEqual(
    (response.output as Json[]).map((item) => item.status),
    ['incomplete'],
  );
  // a reasoning item finished before the cut message stays completed
  const reasoned = new ResponsesStreamEncoder(echo());
  reasoned.push(chunk({ reasoning_content: 'think' }));
  reasoned.push(chunk({ content: 'ab' }));
  reasoned.push(chunk({}, 'length'));
  t.deepEqual(
    (reasoned.finish(usage).response.output as Json[]).map((item) => [item.type, item.status]),
    [
      ['reasoning', 'completed'],
      ['message', 'incomplete'],
    ],
  );
});

test('stream from Claude: a tool call without parameters ends with arguments "{}" in its done event and item', (t) => {
  const anthropic = new StreamTranslator({ legacyFunctions: false });
  const encoder = new ResponsesStreamEncoder(echo());
  const events = [
    { type: 'message_start', message: { id: 'msg_N', usage: { input_tokens: 5, output_tokens: 1 } } },
    { type: 'content_block_start', index: 0, content_block: { type: 'tool_use', id: 'toolu_A', name: 'get_time', input: {} } },
    { type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: '' } },
    { type: 'content_block_stop', index: 0 },
    { type: 'message_delta', delta: { stop_reason: 'tool_use' }, usage: { output_tokens: 7 } },
    { type: 'message_stop' },
  ].flatMap((event) => anthropic.push(event).flatMap((c) => encoder.push(c)));
  const { events: closing, response } = encoder.finish(usage);
  const all = [...events, ...closing];
  for (const { event, data } of all) assertFitsOpenAI(t, 'ResponseStreamEvent', data, event);
  const done = all.find((e) => e.event === 'response.function_call_arguments.done');
  t.like(done?.data, { name: 'get_time', arguments: '{}' });
  const deltas = all.filter((e) => e.event === 'response.function_call_arguments.delta').map((e) => e.data.delta);
  t.deepEqual(deltas, ['{}']);
  t.like((response.output as Json[])[0], { type: 'function_call', call_id: 'toolu_A', arguments: '{}' });
});

test('the error event fits ResponseErrorEvent and carries the SPEC error object', (t) => {
  const error = new ApiError('upstream_error', 'boom', { fields: { upstream_status: 500 } });
  const wire = error.toJSON();
  const event = errorEvent(wire.error, 7, wire);
  t.is(event.event, 'error');
  assertFitsOpenAI(t, 'ResponseErrorEvent', event.data);
  t.like(event.data, { type: 'error', code: 'upstream_error', message: 'boom', sequence_number: 7, error: { upstream_status: 500 } });
});

test('reasoning.effort in each upstream setting: reasoning_effort, DashScope enable_thinking on streams, nothing for the Anthropic adapter', (t) => {
  const chat = toChatRequest(parse({ input: 'x', reasoning: { effort: 'high' } })).chat;
  t.is(withReasoningParam(chat, 'reasoning_effort', false).reasoning_effort, 'high');
  t.like(withReasoningParam(chat, 'enable_thinking', true), { enable_thinking: true });
  t.false('reasoning_effort' in withReasoningParam(chat, 'enable_thinking', true));
  const nonStream = withReasoningParam(chat, 'enable_thinking', false);
  t.false('enable_thinking' in nonStream || 'reasoning_effort' in nonStream, 'DashScope refuses thinking in non-streaming calls');
  t.false('reasoning_effort' in withReasoningParam(chat, 'thinking', true));
  t.false('enable_thinking' in withReasoningParam(chat, 'thinking', true));
  const minimal = toChatRequest(parse({ input: 'x', reasoning: { effort: 'minimal' } })).chat;
  t.like(withReasoningParam(minimal, 'enable_thinking', false), { enable_thinking: false });
  const none = toChatRequest(parse({ input: 'x' })).chat;
  t.is(withReasoningParam(none, 'enable_thinking', true), none, 'no reasoning asked: the body as it is');
});

test('translation time is linear: 60,000 function_call items in a row', (t) => {
  const items = Array.from({ length: 60_000 }, (_, i) => ({ type: 'function_call', call_id: `c${i}`, name: 'f', arguments: '{}' }));
  const started = performance.now();
  const { chat } = toChatRequest(parse({ input: items }));
  const ms = performance.now() - started;
  t.is(((chat.messages as Json[])[0].tool_calls as unknown[]).length, 60_000);
  t.true(ms < 1_000, `${Math.round(ms)} ms`);
});
