import test from 'ava';
import { countTextTokens } from '../src/billing/estimate.js';
import type { ChatChunk } from '../src/upstream/providers/types.js';
import { producedTextOf, producedTextOfBlocks, producedTextOfChoices } from '../workers/chat-usage.js';
import { CHAT_MODELS, type ClientBed, startClientBed } from './helpers/clients.js';

// An upstream that reports no usage (SPEC §3): the gateway bills what was produced, counted with its own
// tokenizer, the same whether the answer came whole or streamed, on every wire format and channel type.

let bed: ClientBed;
const SECRETS = { openai: 'sk-openai-clients', anthropic: 'sk-ant-clients' } as const;
const REPLY = 'Hello! You said: hello world';

test.before(async () => {
  bed = await startClientBed('estimated_usage');
  for (const secret of Object.values(SECRETS)) bed.mock.setBehavior(secret, { omitUsage: true });
});

test.after.always(async () => {
  await bed?.stop();
});

const WIRES = {
  chat: { path: '/chat/completions', body: (model: string) => ({ model, messages: [{ role: 'user', content: 'hello world' }] }) },
  messages: {
    path: '/messages',
    body: (model: string) => ({ model, max_tokens: 200, messages: [{ role: 'user', content: 'hello world' }] }),
  },
  responses: { path: '/responses', body: (model: string) => ({ model, input: 'hello world', store: false }) },
} as const;

async function billedCompletionTokens(
  path: string,
  body: Record<string, unknown>,
): Promise<{ text: string; row: Record<string, unknown> }> {
  const response = await fetch(`${bed.baseURL}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${bed.apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`${path}: ${response.status} ${text}`);
  const requestId = response.headers.get('x-request-id');
  const rows = (await bed.admin.usage(`user_id=${bed.userId}`)).data as Array<Record<string, unknown>>;
  const row = rows.find((r) => r.request_id === requestId);
  if (!row) throw new Error(`${path}: no ledger row for ${requestId}`);
  return { text, row };
}

for (const [channel, model] of Object.entries(CHAT_MODELS)) {
  for (const [wire, { path, body }] of Object.entries(WIRES)) {
    test(`${channel} channel, ${wire}: with no upstream usage, a whole answer bills the tokens of its text, as its stream does`, async (t) => {
      const whole = await billedCompletionTokens(path, body(model));
      const streamed = await billedCompletionTokens(path, { ...body(model), stream: true });
      t.true(whole.text.includes(REPLY) && streamed.text.includes('Hello'), 'the mock answered as expected');
      const produced = countTextTokens(REPLY);
      t.like(whole.row, { kind: 'charge', estimated: true, completion_tokens: produced });
      t.like(streamed.row, { kind: 'charge', estimated: true, completion_tokens: produced });
    });
  }
}

test('a whole answer counts what its stream would: content, reasoning, tool names and arguments, tool input', (t) => {
  const message = {
    role: 'assistant',
    content: 'Let me look.',
    reasoning_content: 'The user wants weather.',
    tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Lyon"}' } }],
  };
  const chunks: ChatChunk[] = [
    { choices: [{ index: 0, delta: { role: 'assistant', reasoning_content: 'The user wants weather.' } }] },
    { choices: [{ index: 0, delta: { content: 'Let me look.' } }] },
    { choices: [{ index: 0, delta: { tool_calls: [{ index: 0, id: 'call_1', function: { name: 'get_weather', arguments: '' } }] } }] },
    { choices: [{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: '{"city":"Lyon"}' } }] } }] },
  ];
  const streamed = chunks.map(producedTextOf).join('');
  t.is(countTextTokens(producedTextOfChoices([{ index: 0, message, finish_reason: 'tool_calls' }])), countTextTokens(streamed));
  t.is(producedTextOfChoices(undefined), '');
  t.is(
    producedTextOfBlocks([
      { type: 'thinking', thinking: 'Hmm.', signature: 'sig' },
      { type: 'text', text: 'Sure.' },
      { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Lyon' } },
    ]),
    'Hmm.Sure.{"city":"Lyon"}',
    'as the Anthropic stream counts its text, thinking and input_json deltas',
  );
});
