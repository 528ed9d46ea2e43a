import test from 'ava';
import { UpstreamError } from '../src/upstream/errors.js';
import { anthropicRequestProblem } from '../src/upstream/providers/anthropic/check.js';
import { toAnthropicRequest } from '../src/upstream/providers/anthropic/request.js';
import { toChatCompletion } from '../src/upstream/providers/anthropic/response.js';
import { StreamTranslator } from '../src/upstream/providers/anthropic/stream.js';

// Pure translation functions: no processes, no network.

test('system and developer messages, wherever they are, become `system` blocks in order', (t) => {
  const out = toAnthropicRequest(
    {
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'hi' },
        { role: 'developer', content: [{ type: 'text', text: 'Answer in French.' }] },
        { role: 'assistant', content: 'Salut.' },
        { role: 'system', content: '' },
        { role: 'user', content: 'again' },
      ],
      max_tokens: 100,
    },
    'claude-sonnet-4-6',
    false,
  );
  t.deepEqual(out.system, [
    { type: 'text', text: 'Be brief.' },
    { type: 'text', text: 'Answer in French.' },
  ]);
  t.deepEqual(out.messages, [
    { role: 'user', content: [{ type: 'text', text: 'hi' }] },
    { role: 'assistant', content: [{ type: 'text', text: 'Salut.' }] },
    { role: 'user', content: [{ type: 'text', text: 'again' }] },
  ]);
  t.is(out.model, 'claude-sonnet-4-6');
  t.is(out.max_tokens, 100);
  t.is(out.stream, false);
});

test('consecutive same-role turns merge; tool results go first in their user turn; empty text is dropped', (t) => {
  const out = toAnthropicRequest(
    {
      messages: [
        { role: 'user', content: 'one' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'two' },
            { type: 'text', text: '' },
          ],
        },
        {
          role: 'assistant',
          content: '',
          tool_calls: [
            { id: 'call_a', type: 'function', function: { name: 'lookup', arguments: '{"q":"x"}' } },
            { id: 'call_b', type: 'function', function: { name: 'lookup', arguments: '' } },
          ],
        },
        { role: 'tool', tool_call_id: 'call_a', content: 'A' },
        { role: 'tool', tool_call_id: 'call_b', content: [{ type: 'text', text: 'B' }] },
        { role: 'user', content: 'thanks' },
      ],
    },
    'm',
    true,
  );
  t.deepEqual(out.messages, [
    {
      role: 'user',
      content: [
        { type: 'text', text: 'one' },
        { type: 'text', text: 'two' },
      ],
    },
    {
      role: 'assistant',
      content: [
        { type: 'tool_use', id: 'call_a', name: 'lookup', input: { q: 'x' } },
        { type: 'tool_use', id: 'call_b', name: 'lookup', input: {} },
      ],
    },
    {
      role: 'user',
      content: [
        { type: 'tool_result', tool_use_id: 'call_a', content: 'A' },
        { type: 'tool_result', tool_use_id: 'call_b', content: 'B' },
        { type: 'text', text: 'thanks' },
      ],
    },
  ]);
  t.is(out.max_tokens, 4096, 'a sane default when the request carries no max_tokens');
  t.is(out.stream, true);
});

test('image_url parts: data URLs become base64 blocks, http(s) URLs url blocks', (t) => {
  const out = toAnthropicRequest(
    {
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'compare' },
            { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=', detail: 'high' } },
            { type: 'image_url', image_url: { url: 'https://example.com/cat.jpg' } },
          ],
        },
      ],
    },
    'm',
    false,
  );
  t.deepEqual((out.messages as Array<{ content: unknown[] }>)[0].content, [
    { type: 'text', text: 'compare' },
    { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
    { type: 'image', source: { type: 'url', url: 'https://example.com/cat.jpg' } },
  ]);
});

test('tools, tool_choice, stop, sampling, user and max_completion_tokens map to their Anthropic fields', (t) => {
  const tools = [
    {
      type: 'function',
      function: { name: 'f', description: 'does f', parameters: { type: 'object', properties: { a: { type: 'number' } } } },
    },
  ];
  const base = { messages: [{ role: 'user', content: 'x' }], tools };
  const choice = (tool_choice: unknown, extra: Record<string, unknown> = {}) =>
    toAnthropicRequest({ ...base, tool_choice, ...extra }, 'm', false).tool_choice;
  t.deepEqual(toAnthropicRequest(base, 'm', false).tools, [
    { name: 'f', description: 'does f', input_schema: tools[0].function.parameters },
  ]);
  t.deepEqual(choice('auto'), { type: 'auto' });
  t.deepEqual(choice('none'), { type: 'none' });
  t.deepEqual(choice('required'), { type: 'any' });
  t.deepEqual(choice({ type: 'function', function: { name: 'f' } }), { type: 'tool', name: 'f' });
  t.deepEqual(choice('auto', { parallel_tool_calls: false }), { type: 'auto', disable_parallel_tool_use: true });
  t.is(choice(undefined), undefined);
  t.is(
    toAnthropicRequest({ messages: base.messages, tool_choice: 'auto' }, 'm', false).tool_choice,
    undefined,
    'no tool_choice without tools',
  );

  const out = toAnthropicRequest(
    {
      messages: base.messages,
      stop: '\n\nHuman:',
      temperature: 1.7,
      top_p: 0.5,
      user: 'user-42',
      max_tokens: 10,
      max_completion_tokens: 20,
      presence_penalty: 1,
      frequency_penalty: 1,
      logit_bias: { 1: 2 },
      seed: 7,
      response_format: { type: 'text' },
    },
    'm',
    false,
  );
  t.deepEqual(
    out,
    {
      model: 'm',
      max_tokens: 20,
      messages: [{ role: 'user', content: [{ type: 'text', text: 'x' }] }],
      stop_sequences: ['\n\nHuman:'],
      temperature: 1,
      metadata: { user_id: 'user-42' },
      stream: false,
    },
    'temperature clamped to Anthropic range; top_p dropped beside it; unsupported but harmless fields dropped',
  );
  t.deepEqual(toAnthropicRequest({ messages: base.messages, stop: ['a', 'b'], top_p: 0.3 }, 'm', false).stop_sequences, ['a', 'b']);
  t.is(toAnthropicRequest({ messages: base.messages, top_p: 0.3 }, 'm', false).top_p, 0.3);
});

test('legacy functions/function_call: tools, choice, and calls paired with function messages by name', (t) => {
  const out = toAnthropicRequest(
    {
      messages: [
        { role: 'user', content: 'x' },
        { role: 'assistant', content: null, function_call: { name: 'get', arguments: '{"k":1}' } },
        { role: 'function', name: 'get', content: 'v' },
      ],
      functions: [{ name: 'get', parameters: { type: 'object', properties: {} } }],
      function_call: { name: 'get' },
    },
    'm',
    false,
  );
  t.deepEqual(out.tools, [{ name: 'get', input_schema: { type: 'object', properties: {} } }]);
  t.deepEqual(out.tool_choice, { type: 'tool', name: 'get', disable_parallel_tool_use: true });
  const [, assistant, result] = out.messages as Array<{ content: Array<Record<string, unknown>> }>;
  t.is(assistant.content[0].type, 'tool_use');
  t.deepEqual(assistant.content[0].input, { k: 1 });
  t.is(result.content[0].tool_use_id, assistant.content[0].id);
});

test('a system-only conversation still sends one user turn', (t) => {
  const out = toAnthropicRequest({ messages: [{ role: 'system', content: 'Say hi.' }] }, 'm', false);
  t.is(out.system, undefined);
  t.deepEqual(out.messages, [{ role: 'user', content: [{ type: 'text', text: 'Say hi.' }] }]);
});

test('requests an Anthropic model cannot honour are named; harmless extras are not', (t) => {
  const messages = [{ role: 'user', content: 'x' }];
  t.deepEqual(anthropicRequestProblem({ messages, n: 2 })?.[0], 'n');
  t.deepEqual(anthropicRequestProblem({ messages, logprobs: true })?.[0], 'logprobs');
  t.deepEqual(anthropicRequestProblem({ messages, response_format: { type: 'json_schema' } })?.[0], 'response_format.json_schema');
  t.deepEqual(
    anthropicRequestProblem({ messages, response_format: { type: 'json_schema', json_schema: { name: 'x', schema: [] } } })?.[0],
    'response_format.json_schema.schema',
  );
  t.is(anthropicRequestProblem({ messages, response_format: { type: 'json_schema', json_schema: { name: 'x', schema: {} } } }), undefined);
  t.is(anthropicRequestProblem({ messages, response_format: { type: 'json_object' } }), undefined);
  t.deepEqual(
    anthropicRequestProblem({ messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: {} }] }] })?.[0],
    'messages.0.content.0.type',
  );
  t.deepEqual(
    anthropicRequestProblem({
      messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/bmp;base64,AAAA' } }] }],
    })?.[0],
    'messages.0.content.0.image_url.url',
  );
  t.deepEqual(
    anthropicRequestProblem({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'ftp://x/y.png' } }] }] })?.[0],
    'messages.0.content.0.image_url.url',
  );
  t.deepEqual(
    anthropicRequestProblem({
      messages: [{ role: 'assistant', tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{oops' } }] }],
    })?.[0],
    'messages.0.tool_calls.0.function.arguments',
  );
  t.is(
    anthropicRequestProblem({
      messages,
      n: 1,
      logprobs: false,
      seed: 3,
      presence_penalty: 0.5,
      logit_bias: {},
      response_format: { type: 'text' },
    }),
    undefined,
  );
});

test('non-stream response: text, tool calls, finish reasons and usage with cache tokens', (t) => {
  const style = { legacyFunctions: false };
  const text = toChatCompletion(
    {
      id: 'msg_01ABC',
      content: [
        { type: 'text', text: 'Hello' },
        { type: 'text', text: ' world' },
      ],
      stop_reason: 'end_turn',
      usage: { input_tokens: 10, output_tokens: 5, cache_read_input_tokens: 100, cache_creation_input_tokens: 20 },
    },
    style,
    1700000000,
  );
  t.deepEqual(text, {
    id: 'chatcmpl-01ABC',
    object: 'chat.completion',
    created: 1700000000,
    choices: [{ index: 0, message: { role: 'assistant', content: 'Hello world', refusal: null }, logprobs: null, finish_reason: 'stop' }],
    usage: {
      prompt_tokens: 130,
      completion_tokens: 5,
      total_tokens: 135,
      prompt_tokens_details: { cached_tokens: 100, cache_write_tokens: 20 },
      completion_tokens_details: { reasoning_tokens: 0 },
    },
  });

  const tools = toChatCompletion(
    {
      id: 'msg_x',
      content: [{ type: 'tool_use', id: 'toolu_1', name: 'lookup', input: { q: 'Paris' } }],
      stop_reason: 'tool_use',
      usage: { input_tokens: 1, output_tokens: 2 },
    },
    style,
  );
  const message = (tools.choices as Array<{ message: Record<string, unknown>; finish_reason: string }>)[0];
  t.is(message.message.content, null);
  t.deepEqual(message.message.tool_calls, [{ id: 'toolu_1', type: 'function', function: { name: 'lookup', arguments: '{"q":"Paris"}' } }]);
  t.is(message.finish_reason, 'tool_calls');

  const legacy = toChatCompletion(
    { id: 'msg_y', content: [{ type: 'tool_use', id: 't', name: 'get', input: {} }], stop_reason: 'tool_use' },
    { legacyFunctions: true },
  );
  const legacyChoice = (legacy.choices as Array<{ message: Record<string, unknown>; finish_reason: string }>)[0];
  t.deepEqual(legacyChoice.message.function_call, { name: 'get', arguments: '{}' });
  t.is(legacyChoice.finish_reason, 'function_call');
  t.is(legacy.usage, undefined, 'no usage from upstream: none invented here (the worker estimates)');

  const finish = (stop_reason: string) =>
    (toChatCompletion({ id: 'm', content: [], stop_reason }, style).choices as Array<{ finish_reason: string }>)[0].finish_reason;
  t.is(finish('max_tokens'), 'length');
  t.is(finish('stop_sequence'), 'stop');
  t.is(finish('refusal'), 'content_filter');
});

test('stream events: role chunk, text, tool-call deltas with stable indexes, finish, usage chunk; errors throw', (t) => {
  const translator = new StreamTranslator({ legacyFunctions: false });
  const events = [
    { type: 'message_start', message: { id: 'msg_S', usage: { input_tokens: 12, output_tokens: 1, cache_read_input_tokens: 3 } } },
    { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
    { type: 'ping' },
    { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Let me check.' } },
    { type: 'content_block_stop', index: 0 },
    { type: 'content_block_start', index: 1, content_block: { type: 'tool_use', id: 'toolu_A', name: 'a', input: {} } },
    { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '' } },
    { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '{"x":' } },
    { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '1}' } },
    { type: 'content_block_start', index: 2, content_block: { type: 'tool_use', id: 'toolu_B', name: 'b', input: {} } },
    { type: 'content_block_delta', index: 2, delta: { type: 'input_json_delta', partial_json: '{}' } },
    { type: 'message_delta', delta: { stop_reason: 'tool_use' }, usage: { output_tokens: 40 } },
    { type: 'message_stop' },
  ];
  const chunks = events.flatMap((e) => translator.push(e));
  t.true(translator.finished);
  t.true(chunks.every((c) => c.id === 'chatcmpl-S' && c.object === 'chat.completion.chunk'));
  const deltas = chunks.map((c) => (c.choices as Array<{ delta: unknown }>)[0]?.delta);
  t.deepEqual(deltas, [
    { role: 'assistant', content: '' },
    { content: 'Let me check.' },
    { tool_calls: [{ index: 0, id: 'toolu_A', type: 'function', function: { name: 'a', arguments: '' } }] },
    { tool_calls: [{ index: 0, function: { arguments: '{"x":' } }] },
    { tool_calls: [{ index: 0, function: { arguments: '1}' } }] },
    { tool_calls: [{ index: 1, id: 'toolu_B', type: 'function', function: { name: 'b', arguments: '' } }] },
    { tool_calls: [{ index: 1, function: { arguments: '{}' } }] },
    {},
    undefined,
  ]);
  t.is((chunks.at(-2)!.choices as Array<{ finish_reason: string }>)[0].finish_reason, 'tool_calls');
  t.deepEqual(chunks.at(-1)!.choices, []);
  t.deepEqual(chunks.at(-1)!.usage, {
    prompt_tokens: 15,
    completion_tokens: 40,
    total_tokens: 55,
    prompt_tokens_details: { cached_tokens: 3, cache_write_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0 },
  });

  const failing = new StreamTranslator({ legacyFunctions: false });
  t.deepEqual(
    failing.push({ type: 'message_start', message: { id: 'msg_E' } }),
    [],
    'nothing is sent before real output, so an early error can fail over',
  );
  const err = t.throws(() => failing.push({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }));
  t.true(err instanceof UpstreamError);
  t.is((err as UpstreamError).status, 529);
  t.is((err as UpstreamError).toApiError().code, 'upstream_error');
  t.regex(err!.message, /Overloaded/);
});

test('stream: a tool call that streamed no argument text (partial_json "" or no delta at all) ends with arguments "{}"', (t) => {
  for (const legacyFunctions of [false, true]) {
    const translator = new StreamTranslator({ legacyFunctions });
    const events = [
      { type: 'message_start', message: { id: 'msg_N', usage: { input_tokens: 5, output_tokens: 1 } } },
      { type: 'content_block_start', index: 0, content_block: { type: 'tool_use', id: 'toolu_A', name: 'now', input: {} } },
      { type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: '' } },
      { type: 'content_block_stop', index: 0 },
      { type: 'content_block_start', index: 1, content_block: { type: 'tool_use', id: 'toolu_B', name: 'today', input: {} } },
      { type: 'content_block_stop', index: 1 },
      { type: 'message_delta', delta: { stop_reason: 'tool_use' }, usage: { output_tokens: 7 } },
      { type: 'message_stop' },
    ];
    const deltas = events.flatMap((e) => translator.push(e)).map((c) => (c.choices as Array<{ delta: Record<string, unknown> }>)[0]?.delta);
    if (legacyFunctions) {
      const calls = deltas.flatMap((d) => (d?.function_call ? [d.function_call as { arguments: string }] : []));
      t.is(calls.map((f) => f.arguments).join(''), '{}', 'legacy answers carry the first call, with "{}"');
      continue;
    }
    const argumentsOf = (index: number) =>
      deltas
        .flatMap((d) => (d?.tool_calls as Array<{ index: number; function: { arguments?: string } }> | undefined) ?? [])
        .filter((call) => call.index === index)
        .map((call) => call.function.arguments ?? '')
        .join('');
    t.is(argumentsOf(0), '{}');
    t.is(argumentsOf(1), '{}');
    t.deepEqual(deltas.slice(1, 5), [
      { tool_calls: [{ index: 0, id: 'toolu_A', type: 'function', function: { name: 'now', arguments: '' } }] },
      { tool_calls: [{ index: 0, function: { arguments: '{}' } }] },
      { tool_calls: [{ index: 1, id: 'toolu_B', type: 'function', function: { name: 'today', arguments: '' } }] },
      { tool_calls: [{ index: 1, function: { arguments: '{}' } }] },
    ]);
  }
  // the forced JSON tool of a response_format is the content, never a tool call
  const jsonTool = { name: 'json_response', wrapped: false, definition: {} };
  const structured = new StreamTranslator({ legacyFunctions: false, jsonTool });
  const chunks = [
    { type: 'content_block_start', index: 0, content_block: { type: 'tool_use', id: 'toolu_J', name: 'json_response', input: {} } },
    { type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: '{"a":1}' } },
    { type: 'content_block_stop', index: 0 },
  ].flatMap((e) => structured.push(e));
  t.deepEqual(
    chunks.map((c) => (c.choices as Array<{ delta: unknown }>)[0]?.delta),
    [{ role: 'assistant', content: '' }, { content: '{"a":1}' }],
  );
});
