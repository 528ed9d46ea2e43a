import test from 'ava';
import OpenAI from 'openai';
import { zodResponseFormat } from 'openai/helpers/zod';
import type { RunnableToolFunctionWithParse } from 'openai/lib/RunnableFunction';
import { z } from 'zod';
import { CHAT_MODELS, type ClientBed, startClientBed } from './helpers/clients.js';

// The official `openai` npm SDK with only baseURL and apiKey changed, on an OpenAI-type and an Anthropic
// model: chat.completions.parse (structured outputs), the .stream() helper with finalChatCompletion(), and
// the tool runner (runTools), streaming and not.
let bed: ClientBed;
let client: OpenAI;

test.before(async () => {
  bed = await startClientBed('clients_openai_sdk');
  client = new OpenAI({ baseURL: bed.baseURL, apiKey: bed.apiKey });
});

test.after.always(async () => {
  await bed?.stop();
});

const City = z.object({
  city: z.string(),
  population: z.number().int(),
  landmarks: z.array(z.string()),
  climate: z.enum(['mild', 'harsh']),
  mayor: z.string().nullable(),
});

const weatherTool = (calls: unknown[]): RunnableToolFunctionWithParse<{ city: string }> => ({
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false },
    parse: JSON.parse,
    function: (args: { city: string }) => {
      calls.push(args);
      return { city: args.city, forecast: 'sunny', celsius: 21 };
    },
  },
});

for (const [type, model] of Object.entries(CHAT_MODELS)) {
  test.serial(`${type}: chat.completions.parse with zodResponseFormat gives the parsed object`, async (t) => {
    const before = await bed.spent();
    const completion = await client.chat.completions.parse({
      model,
      messages: [
        { role: 'system', content: 'Extract the city.' },
        { role: 'user', content: 'Lyon' },
      ],
      response_format: zodResponseFormat(City, 'city'),
    });
    const choice = completion.choices[0];
    t.is(choice.finish_reason, 'stop');
    t.is(choice.message.refusal, null);
    t.deepEqual(choice.message.parsed, { city: 'Lyon', population: 42, landmarks: ['Lyon'], climate: 'mild', mayor: 'Lyon' });
    t.true(completion.usage!.completion_tokens > 0);
    t.true((await bed.spent()) > before, 'billed like any reply');

    const sent = bed.mock.requests.at(-1)!;
    if (type === 'anthropic') {
      const body = sent.body as { tools: Array<{ name: string; input_schema: unknown }>; tool_choice: unknown };
      t.is(sent.path, '/v1/messages');
      t.deepEqual(body.tool_choice, { type: 'tool', name: 'json_response' });
      t.like(body.tools[0].input_schema, { type: 'object', required: ['city', 'population', 'landmarks', 'climate', 'mayor'] });
    } else {
      t.like(sent.body, { response_format: { type: 'json_schema', json_schema: { name: 'city', strict: true } } });
    }
  });

  test.serial(`${type}: the .stream() helper streams content and finalChatCompletion() assembles it (text and parsed)`, async (t) => {
    const deltas: string[] = [];
    const stream = client.chat.completions
      .stream({ model, messages: [{ role: 'user', content: 'stream to me' }], stream_options: { include_usage: true } })
      .on('content.delta', ({ delta }) => deltas.push(delta));
    const final = await stream.finalChatCompletion();
    t.is(final.choices[0].message.content, 'Hello! You said: stream to me');
    t.true(deltas.length > 1, 'it came in pieces');
    t.is(deltas.join(''), 'Hello! You said: stream to me');
    t.is(final.choices[0].finish_reason, 'stop');
    t.true((final.usage as { cost?: number } | undefined)!.cost! > 0, 'the usage chunk carries the cost');

    const structured = await client.chat.completions
      .stream({ model, messages: [{ role: 'user', content: 'Oslo' }], response_format: zodResponseFormat(City, 'city') })
      .finalChatCompletion();
    t.deepEqual(structured.choices[0].message.parsed, {
      city: 'Oslo',
      population: 42,
      landmarks: ['Oslo'],
      climate: 'mild',
      mayor: 'Oslo',
    });
  });

  test.serial(`${type}: the tool runner calls the tool, sends its result back and ends with the answer`, async (t) => {
    for (const stream of [false, true]) {
      const calls: unknown[] = [];
      const params = { model, messages: [{ role: 'user' as const, content: 'Paris' }], tools: [weatherTool(calls)] };
      const runner = stream ? client.chat.completions.runTools({ ...params, stream: true }) : client.chat.completions.runTools(params);
      const answer = await runner.finalContent();
      t.deepEqual(calls, [{ city: 'Paris' }], `stream: ${stream}`);
      t.is(answer, 'Tool result received: {"city":"Paris","forecast":"sunny","celsius":21}', `stream: ${stream}`);
      const messages = runner.messages;
      t.is(messages.filter((m) => m.role === 'tool').length, 1);
      const called = messages.flatMap((m) => (m.role === 'assistant' ? (m.tool_calls ?? []) : []));
      t.deepEqual(
        called.map((c) => (c as OpenAI.ChatCompletionMessageFunctionToolCall).function.name),
        ['get_weather'],
      );
    }
  });
}
