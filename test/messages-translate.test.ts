import test from 'ava';
import { IMAGE_PART_TOKENS } from '../src/billing/estimate.js';
import type { ChatChunk } from '../src/upstream/providers/types.js';
import { countMessagesTokens } from '../src/wire/messages/count.js';
import { effortOf, toChatRequest, translationProblem } from '../src/wire/messages/request.js';
import { anthropicUsageOf, toAnthropicMessage } from '../src/wire/messages/response.js';
import { MessagesStreamTranslator } from '../src/wire/messages/stream.js';

// Anthropic Messages ⇄ OpenAI chat, for openai/dashscope channels: pure functions, no processes, no network.

test('system as blocks with cache_control, text and images, stop_sequences, sampling and metadata become a chat request', (t) => {
  const out = toChatRequest(
    {
      model: 'm',
      max_tokens: 100,
      system: [
        { type: 'text', text: 'You are Claude Code.', cache_control: { type: 'ephemeral' } },
        { type: 'text', text: 'Be terse.' },
      ],
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'What is this?' },
            { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0' } },
            { type: 'image', source: { type: 'url', url: 'https://example.com/a.jpg' } },
          ],
        },
        { role: 'assistant', content: 'A logo.' },
        { role: 'user', content: [{ type: 'text', text: 'Thanks', cache_control: { type: 'ephemeral' } }] },
      ],
      stop_sequences: ['END', ''],
      temperature: 0.5,
      top_p: 0.9,
      top_k: 5,
      metadata: { user_id: 'u-1' },
    },
    'reasoning_effort',
  );
  t.deepEqual(out, {
    model: 'm',
    messages: [
      { role: 'system', content: 'You are Claude Code.\n\nBe terse.' },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'What is this?' },
          { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0' } },
          { type: 'image_url', image_url: { url: 'https://example.com/a.jpg' } },
        ],
      },
      { role: 'assistant', content: 'A logo.' },
      { role: 'user', content: 'Thanks' },
    ],
    max_tokens: 100,
    temperature: 0.5,
    top_p: 0.9,
    stop: ['END'],
    user: 'u-1',
  });
});

test('tools, tool_choice and a tool_use → tool_result round trip become function tools, tool_calls and tool messages', (t) => {
  const out = toChatRequest(
    {
      model: 'm',
      max_tokens: 10,
      tools: [{ name: 'get_weather', description: 'Weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } }],
      tool_choice: { type: 'any', disable_parallel_tool_use: true },
      messages: [
        { role: 'user', content: 'Weather in Paris and Rome?' },
        {
          role: 'assistant',
          content: [
            { type: 'thinking', thinking: 'hmm', signature: 's' },
            { type: 'text', text: 'Checking.' },
            { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } },
            { type: 'tool_use', id: 'toolu_2', name: 'get_weather', input: { city: 'Rome' } },
          ],
        },
        {
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 'toolu_1', content: '18°C' },
            { type: 'tool_result', tool_use_id: 'toolu_2', content: [{ type: 'text', text: 'no data' }], is_error: true },
            { type: 'text', text: 'And tomorrow?' },
          ],
        },
      ],
    },
    'reasoning_effort',
  );
  t.deepEqual(out.tools, [
    {
      type: 'function',
      function: { name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } },
    },
  ]);
  t.is(out.tool_choice, 'required');
  t.is(out.parallel_tool_calls, false);
  t.deepEqual((out.messages as unknown[]).slice(1), [
    {
      role: 'assistant',
      content: 'Checking.',
      tool_calls: [
        { id: 'toolu_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
        { id: 'toolu_2', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Rome"}' } },
      ],
    },
    { role: 'tool', tool_call_id: 'toolu_1', content: '18°C' },
    { role: 'tool', tool_call_id: 'toolu_2', content: 'Error: no data' },
    { role: 'user', content: 'And tomorrow?' },
  ]);
  const choice = (tool_choice: unknown) =>
    toChatRequest({ messages: [], tools: [{ name: 'x', input_schema: {} }], tool_choice }, 'reasoning_effort').tool_choice;
  t.is(choice({ type: 'auto' }), 'auto');
  t.is(choice({ type: 'none' }), 'none');
  t.deepEqual(choice({ type: 'tool', name: 'x' }), { type: 'function', function: { name: 'x' } });
  t.is(choice(undefined), undefined);
});

test('thinking becomes reasoning_effort (by budget) on OpenAI, enable_thinking with its budget on DashScope streams, nothing elsewhere', (t) => {
  const body = (thinking: unknown, stream = true) => ({ messages: [{ role: 'user', content: 'hi' }], thinking, stream });
  t.is(toChatRequest(body({ type: 'enabled', budget_tokens: 1024 }), 'reasoning_effort').reasoning_effort, 'low');
  t.is(toChatRequest(body({ type: 'enabled', budget_tokens: 10_000 }), 'reasoning_effort').reasoning_effort, 'medium');
  t.is(toChatRequest(body({ type: 'enabled', budget_tokens: 31_999 }), 'reasoning_effort').reasoning_effort, 'high');
  t.is(toChatRequest(body({ type: 'disabled' }), 'reasoning_effort').reasoning_effort, undefined);
  t.is(effortOf(undefined), 'medium');
  const qwen = toChatRequest(body({ type: 'enabled', budget_tokens: 2048 }), 'enable_thinking');
  t.is(qwen.enable_thinking, true);
  t.is(qwen.thinking_budget, 2048);
  t.is(qwen.reasoning_effort, undefined);
  t.is(toChatRequest(body({ type: 'disabled' }), 'enable_thinking').enable_thinking, false);
  t.false(
    'enable_thinking' in toChatRequest(body({ type: 'enabled', budget_tokens: 2048 }, false), 'enable_thinking'),
    'DashScope thinks in streams only',
  );
  t.false('reasoning_effort' in toChatRequest(body({ type: 'enabled', budget_tokens: 2048 }), 'thinking'));
});

test('server tools cannot be translated: the problem names the tool', (t) => {
  t.is(
    translationProblem({
      tools: [
        { name: 'x', input_schema: {} },
        { type: 'custom', name: 'y', input_schema: {} },
      ],
    }),
    undefined,
  );
  const problem = translationProblem({
    tools: [
      { name: 'x', input_schema: {} },
      { type: 'web_search_20250305', name: 'web_search' },
    ],
  });
  t.is(problem?.[0], 'tools.1');
  t.regex(problem?.[1] ?? '', /web_search_20250305/);
});

const ANSWER_SCHEMA = { type: 'object', properties: { answer: { type: 'number' } }, required: ['answer'], additionalProperties: false };

test('structured output (output_config.format, or the beta’s output_format) becomes a strict json_schema response_format', (t) => {
  const ask = { model: 'm', max_tokens: 10, messages: [{ role: 'user', content: '2+2?' }] };
  const expected = { type: 'json_schema', json_schema: { name: 'output', schema: ANSWER_SCHEMA, strict: true } };
  const format = { type: 'json_schema', schema: ANSWER_SCHEMA };
  t.deepEqual(toChatRequest({ ...ask, output_config: { format } }, 'reasoning_effort').response_format, expected);
  t.deepEqual(toChatRequest({ ...ask, output_format: format }, 'enable_thinking').response_format, expected);
  t.false('response_format' in toChatRequest({ ...ask, output_config: { format: null, effort: 'high' } }, 'reasoning_effort'));
  t.is(translationProblem({ ...ask, output_config: { format } }), undefined);
  t.is(translationProblem({ ...ask, output_config: { effort: 'high' } }), undefined, 'effort is dropped: Claude Code sends it by default');
});

test('structured output a translation cannot honour: the problem names the field', (t) => {
  const ask = { model: 'm', max_tokens: 10, messages: [{ role: 'user', content: '2+2?' }] };
  const field = (body: Record<string, unknown>) => translationProblem({ ...ask, ...body })?.[0];
  t.is(field({ output_config: { format: { type: 'xml', schema: ANSWER_SCHEMA } } }), 'output_config.format.type');
  t.is(field({ output_config: { format: { type: 'json_schema' } } }), 'output_config.format.schema');
  t.is(field({ output_config: { format: { type: 'json_schema', schema: ANSWER_SCHEMA }, verbosity: 'low' } }), 'output_config.verbosity');
  t.is(field({ output_config: 'json' }), 'output_config');
  t.is(field({ output_format: { type: 'regex', schema: ANSWER_SCHEMA } }), 'output_format.type');
  t.is(
    field({
      output_format: { type: 'json_schema', schema: ANSWER_SCHEMA },
      output_config: { format: { type: 'json_schema', schema: ANSWER_SCHEMA } },
    }),
    'output_format',
  );
});

test('a chat answer becomes an Anthropic message: thinking, text and tool_use blocks, stop_reason, usage with cache tokens', (t) => {
  const message = toAnthropicMessage(
    {
      id: 'chatcmpl-abc',
      choices: [
        {
          index: 0,
          finish_reason: 'tool_calls',
          message: {
            role: 'assistant',
            reasoning_content: 'Let me see.',
            content: 'Calling the tool.',
            tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }],
          },
        },
      ],
    },
    'public/model',
    anthropicUsageOf({ promptTokens: 1000, completionTokens: 20, images: 0, cachedTokens: 600, cacheWriteTokens: 100 }, 0.0012),
  );
  t.deepEqual(message, {
    id: 'msg_abc',
    type: 'message',
    role: 'assistant',
    model: 'public/model',
    content: [
      { type: 'thinking', thinking: 'Let me see.', signature: '' },
      { type: 'text', text: 'Calling the tool.' },
      { type: 'tool_use', id: 'call_1', name: 'get_weather', input: { city: 'Paris' } },
    ],
    stop_reason: 'tool_use',
    stop_sequence: null,
    usage: { input_tokens: 300, cache_creation_input_tokens: 100, cache_read_input_tokens: 600, output_tokens: 20, cost: 0.0012 },
  });
  const stop = (finish_reason: string) =>
    toAnthropicMessage({ choices: [{ finish_reason, message: { content: 'x' } }] }, 'm', {}).stop_reason;
  t.is(stop('stop'), 'end_turn');
  t.is(stop('length'), 'max_tokens');
  t.is(stop('content_filter'), 'refusal');
});

test('an OpenAI refusal (message.refusal) is kept as a text block with stop_reason refusal', (t) => {
  const message = toAnthropicMessage(
    {
      id: 'chatcmpl-r',
      choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: null, refusal: 'I can’t help with that.' } }],
    },
    'm',
    {},
  );
  t.deepEqual(message.content, [{ type: 'text', text: 'I can’t help with that.' }]);
  t.is(message.stop_reason, 'refusal');
  const plain = toAnthropicMessage({ choices: [{ finish_reason: 'stop', message: { content: 'Sure.', refusal: null } }] }, 'm', {});
  t.is(plain.stop_reason, 'end_turn', 'a null refusal is no refusal');
});

const blockWithTwoDeltas = ['content_block_start', 'content_block_delta', 'content_block_delta', 'content_block_stop'];

const chunk = (delta: Record<string, unknown>, finish_reason: string | null = null): ChatChunk => ({
  id: 'chatcmpl-s1',
  choices: [{ index: 0, delta, finish_reason }],
});

test('a chat stream becomes Anthropic’s exact event sequence: thinking, text, then two tool calls with every argument fragment', (t) => {
  const translator = new MessagesStreamTranslator('public/model');
  const events = [
    chunk({ role: 'assistant', content: '' }),
    chunk({ reasoning_content: 'Think' }),
    chunk({ reasoning_content: 'ing.' }),
    chunk({ content: 'Hel' }),
    chunk({ content: 'lo' }),
    chunk({ tool_calls: [{ index: 0, id: 'call_a', type: 'function', function: { name: 'f', arguments: '' } }] }),
    chunk({ tool_calls: [{ index: 0, function: { arguments: '{"a":' } }] }),
    chunk({ tool_calls: [{ index: 0, function: { arguments: '1}' } }] }),
    chunk({ tool_calls: [{ index: 1, id: 'call_b', type: 'function', function: { name: 'g', arguments: '{"b"' } }] }),
    chunk({ tool_calls: [{ index: 1, function: { arguments: ':2}' } }] }),
    chunk({}, 'tool_calls'),
    { id: 'chatcmpl-s1', choices: [], usage: { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 } },
  ].flatMap((c) => translator.push(c));
  events.push(...translator.finish(), ...translator.closing({ input_tokens: 5, output_tokens: 7 }));
  t.deepEqual(
    events.map((e) => e.event),
    // thinking, text, two tool calls: each block opened, two deltas, closed, in order
    ['message_start', 'ping', ...Array.from({ length: 4 }, () => blockWithTwoDeltas).flat(), 'message_delta', 'message_stop'],
  );
  t.true(events.every((e) => (e.data as { type: string }).type === e.event));
  const data = events.map((e) => e.data as Record<string, any>);
  t.is(data[0].message.model, 'public/model');
  t.is(data[0].message.id, 'msg_s1');
  t.deepEqual(data[0].message.content, []);
  t.deepEqual(data[2], { type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '', signature: '' } });
  t.deepEqual(data[3].delta, { type: 'thinking_delta', thinking: 'Think' });
  t.deepEqual(data[6], { type: 'content_block_start', index: 1, content_block: { type: 'text', text: '' } });
  t.deepEqual(data[8], { type: 'content_block_delta', index: 1, delta: { type: 'text_delta', text: 'lo' } });
  t.deepEqual(data[10], { type: 'content_block_start', index: 2, content_block: { type: 'tool_use', id: 'call_a', name: 'f', input: {} } });
  t.is(
    data
      .filter((d) => d.index === 2 && d.delta)
      .map((d) => d.delta.partial_json)
      .join(''),
    '{"a":1}',
  );
  t.is(
    data
      .filter((d) => d.index === 3 && d.delta?.type === 'input_json_delta')
      .map((d) => d.delta.partial_json)
      .join(''),
    '{"b":2}',
  );
  t.deepEqual(data[18], {
    type: 'message_delta',
    delta: { stop_reason: 'tool_use', stop_sequence: null },
    usage: { input_tokens: 5, output_tokens: 7 },
  });
});

test('tool calls streamed without an index (whole calls, one a chunk) each get their own tool_use block', (t) => {
  const translator = new MessagesStreamTranslator('m');
  const events = [
    chunk({ content: 'Two calls.' }),
    chunk({ tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: '{"x":1}' } }] }),
    chunk({ tool_calls: [{ id: 'call_2', type: 'function', function: { name: 'g', arguments: '{"y":' } }] }),
    chunk({ tool_calls: [{ function: { arguments: '2}' } }] }),
    chunk({}, 'tool_calls'),
  ].flatMap((c) => translator.push(c));
  events.push(...translator.finish());
  const data = events.map((e) => e.data as Record<string, any>);
  const starts = data.filter((d) => d.type === 'content_block_start');
  t.deepEqual(
    starts.map((d) => [d.index, d.content_block.type, d.content_block.id]),
    [
      [0, 'text', undefined],
      [1, 'tool_use', 'call_1'],
      [2, 'tool_use', 'call_2'],
    ],
  );
  const args = (index: number) =>
    data
      .filter((d) => d.index === index && d.delta?.type === 'input_json_delta')
      .map((d) => d.delta.partial_json)
      .join('');
  t.is(args(1), '{"x":1}');
  t.is(args(2), '{"y":2}');
  t.deepEqual(
    data.filter((d) => d.type === 'content_block_stop').map((d) => d.index),
    [0, 1, 2],
  );
});

/** Each block's deltas between its own start and stop, and one block open at a time (Anthropic's documented order). */
function blocksInOrder(events: { data: unknown }[]): boolean {
  let open: number | undefined;
  for (const { data } of events as { data: Record<string, any> }[]) {
    if (data.type === 'content_block_start') {
      if (open !== undefined) return false;
      open = data.index;
    } else if (data.type === 'content_block_delta' && data.index !== open) return false;
    else if (data.type === 'content_block_stop') {
      if (data.index !== open) return false;
      open = undefined;
    }
  }
  return open === undefined;
}

test('parallel tool calls whose fragments interleave still give one block after another, each with all its input', (t) => {
  const translator = new MessagesStreamTranslator('m');
  const call = (index: number, args: string, header?: { id: string; name: string }) =>
    chunk({
      tool_calls: [
        {
          index,
          ...(header ? { id: header.id, type: 'function' } : {}),
          function: { ...(header ? { name: header.name } : {}), arguments: args },
        },
      ],
    });
  const events = [
    chunk({ role: 'assistant', content: null }),
    call(0, '', { id: 'call_a', name: 'f' }),
    call(1, '', { id: 'call_b', name: 'g' }),
    call(0, '{"a":'),
    call(1, '{"b":'),
    call(0, '1}'),
    call(1, '2}'),
    chunk({}, 'tool_calls'),
  ].flatMap((c) => translator.push(c));
  events.push(...translator.finish(), ...translator.closing({ output_tokens: 9 }));
  t.deepEqual(
    events.map((e) => e.event),
    ['message_start', 'ping', ...blockWithTwoDeltas, ...blockWithTwoDeltas, 'message_delta', 'message_stop'],
  );
  t.true(blocksInOrder(events));
  const data = events.map((e) => e.data as Record<string, any>);
  const starts = data.filter((d) => d.type === 'content_block_start');
  t.deepEqual(
    starts.map((d) => [d.index, d.content_block.id, d.content_block.name]),
    [
      [0, 'call_a', 'f'],
      [1, 'call_b', 'g'],
    ],
  );
  const args = (index: number) =>
    data
      .filter((d) => d.index === index && d.delta?.type === 'input_json_delta')
      .map((d) => d.delta.partial_json)
      .join('');
  t.is(args(0), '{"a":1}');
  t.is(args(1), '{"b":2}');
  t.is(data.at(-2)?.delta.stop_reason, 'tool_use');
});

test('three interleaved calls after text: the first streams live, the others follow in index order when it closes', (t) => {
  const translator = new MessagesStreamTranslator('m');
  const call = (index: number, args: string, id?: string) =>
    chunk({
      tool_calls: [
        { index, ...(id ? { id, type: 'function', function: { name: `t${index}`, arguments: args } } : { function: { arguments: args } }) },
      ],
    });
  const live = [
    chunk({ content: 'Three calls.' }),
    call(0, '{"x"', 'call_0'),
    call(2, '{"z"', 'call_2'),
    call(1, '{"y"', 'call_1'),
    call(0, ':0}'),
  ].flatMap((c) => translator.push(c));
  t.deepEqual(
    live.filter((e) => e.event === 'content_block_delta').map((e) => (e.data as any).index),
    [0, 1, 1],
    'the text and the first call stream as they come',
  );
  const rest = [call(2, ':2}'), call(1, ':1}'), chunk({}, 'tool_calls')].flatMap((c) => translator.push(c));
  t.deepEqual(rest, [], 'the other calls wait for the open block to close');
  const events = [...live, ...rest, ...translator.finish()];
  t.true(blocksInOrder(events));
  const data = events.map((e) => e.data as Record<string, any>);
  t.deepEqual(
    data.filter((d) => d.type === 'content_block_start').map((d) => [d.index, d.content_block.id ?? d.content_block.type]),
    [
      [0, 'text'],
      [1, 'call_0'],
      [2, 'call_1'],
      [3, 'call_2'],
    ],
  );
  const args = (index: number) =>
    data
      .filter((d) => d.index === index && d.delta?.type === 'input_json_delta')
      .map((d) => d.delta.partial_json)
      .join('');
  t.deepEqual([args(1), args(2), args(3)], ['{"x":0}', '{"y":1}', '{"z":2}']);
});

test("text or thinking between a call's fragments waits for the end: no block gets a delta after its stop", (t) => {
  const call = (index: number, args: string, id?: string) =>
    chunk({
      tool_calls: [{ index, ...(id ? { id, type: 'function' } : {}), function: { ...(id ? { name: `t${index}` } : {}), arguments: args } }],
    });
  const cases = {
    'text between two interleaved calls': [
      call(0, '{"a"', 'call_a'),
      call(1, '{"b"', 'call_b'),
      chunk({ content: 'Hi there' }),
      call(1, ':2}'),
      call(0, ':1}'),
    ],
    'thinking around a call': [
      chunk({ reasoning_content: 'First.' }),
      call(0, '{"a":', 'call_a'),
      chunk({ reasoning_content: 'Then.' }),
      call(0, '1}'),
    ],
  };
  for (const [name, chunks] of Object.entries(cases)) {
    const translator = new MessagesStreamTranslator('m');
    const events = [...chunks, chunk({}, 'tool_calls')].flatMap((c) => translator.push(c));
    events.push(...translator.finish(), ...translator.closing({ output_tokens: 9 }));
    t.true(blocksInOrder(events), name);
    const data = events.map((e) => e.data as Record<string, any>);
    const blocks = data.filter((d) => d.type === 'content_block_start').map((d) => d.index as number);
    const input = (index: number) =>
      data
        .filter((d) => d.index === index && d.delta?.type === 'input_json_delta')
        .map((d) => d.delta.partial_json)
        .join('');
    const textOf = (index: number) =>
      data
        .filter((d) => d.index === index && d.type === 'content_block_delta')
        .map((d) => d.delta.text ?? d.delta.thinking ?? '')
        .join('');
    const byId = Object.fromEntries(
      data
        .filter((d) => d.type === 'content_block_start')
        .map((d) => [d.content_block.id ?? `${d.content_block.type}@${d.index}`, d.index]),
    );
    if (name.startsWith('text')) {
      t.deepEqual(blocks, [0, 1, 2], name);
      t.is(input(byId.call_a), '{"a":1}');
      t.is(input(byId.call_b), '{"b":2}');
      t.is(textOf(2), 'Hi there', 'the text follows the calls, whole');
    } else {
      t.deepEqual(blocks, [0, 1, 2], name);
      t.is(textOf(0), 'First.');
      t.is(input(byId.call_a), '{"a":1}');
      t.is(textOf(2), 'Then.');
    }
  }
});

test('a refusal streamed as delta.refusal is a text block, and the stop reason is refusal', (t) => {
  const translator = new MessagesStreamTranslator('m');
  const events = [
    chunk({ role: 'assistant', content: null, refusal: null }),
    chunk({ refusal: 'I can’t help ' }),
    chunk({ refusal: 'with that.' }),
    chunk({}, 'stop'),
  ].flatMap((c) => translator.push(c));
  events.push(...translator.finish(), ...translator.closing({ output_tokens: 5 }));
  t.deepEqual(
    events.map((e) => e.event),
    ['message_start', 'ping', ...blockWithTwoDeltas, 'message_delta', 'message_stop'],
  );
  const data = events.map((e) => e.data as Record<string, any>);
  t.deepEqual(data[2].content_block, { type: 'text', text: '' });
  t.deepEqual(
    data.filter((d) => d.delta?.type === 'text_delta').map((d) => d.delta.text),
    ['I can’t help ', 'with that.'],
  );
  t.is(data.at(-2)?.delta.stop_reason, 'refusal');
});

test('an empty stream still opens and closes the message; a length stop is max_tokens', (t) => {
  const translator = new MessagesStreamTranslator('m');
  const events = [...translator.push(chunk({}, 'length')), ...translator.finish(), ...translator.closing({ output_tokens: 0 })];
  t.deepEqual(
    events.map((e) => e.event),
    ['message_start', 'ping', 'message_delta', 'message_stop'],
  );
  t.is((events[2].data as any).delta.stop_reason, 'max_tokens');
});

test('the gateway’s own token count grows with the prompt and counts tools', (t) => {
  const small = countMessagesTokens({ messages: [{ role: 'user', content: 'hi' }] });
  const big = countMessagesTokens({ system: 'You are a careful assistant. '.repeat(20), messages: [{ role: 'user', content: 'hi' }] });
  const tools = countMessagesTokens({
    messages: [{ role: 'user', content: 'hi' }],
    tools: [{ name: 'get_weather', input_schema: { type: 'object' } }],
  });
  t.true(small > 0);
  t.true(big > small + 100);
  t.true(tools > small);
});

test('the count covers each image once: one the translation carries, and one it drops (a Files API source)', (t) => {
  const ask = (image: Record<string, unknown>) =>
    countMessagesTokens({ messages: [{ role: 'user', content: [image, { type: 'text', text: 'What is this?' }] }] });
  const textOnly = countMessagesTokens({ messages: [{ role: 'user', content: [{ type: 'text', text: 'What is this?' }] }] });
  const carried = ask({ type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'AAAA' } });
  const dropped = ask({ type: 'image', source: { type: 'file', file_id: 'file_011' } });
  t.is(carried - textOnly, IMAGE_PART_TOKENS, 'counted once, through the chat translation');
  t.is(dropped - textOnly, IMAGE_PART_TOKENS, 'counted once, as a block the translation drops');
});
