import { AIMessage, type AIMessageChunk, HumanMessage, ToolMessage } from '@langchain/core/messages';
import { tool } from '@langchain/core/tools';
import { ChatOpenAI, OpenAIEmbeddings } from '@langchain/openai';
import test from 'ava';
import { z } from 'zod';
import { CHAT_MODELS, type ClientBed, EMBEDDING_MODEL, startClientBed } from './helpers/clients.js';

// LangChain JS (`@langchain/openai`) with only the base URL and key changed, on an OpenAI-type and an
// Anthropic model: invoke, stream, bindTools, withStructuredOutput (its default method), OpenAIEmbeddings.
let bed: ClientBed;

test.before(async () => {
  bed = await startClientBed('clients_langchain');
});

test.after.always(async () => {
  await bed?.stop();
});

const chat = (model: string) => new ChatOpenAI({ model, apiKey: bed.apiKey, configuration: { baseURL: bed.baseURL }, maxRetries: 0 });

const weather = tool(async ({ city }) => JSON.stringify({ city, forecast: 'cloudy' }), {
  name: 'get_weather',
  description: 'The weather in a city',
  schema: z.object({ city: z.string() }),
});

const Person = z.object({
  name: z.string().describe('full name'),
  age: z.number().int(),
  email: z.string().email(),
  languages: z.array(z.string()),
});

for (const [type, model] of Object.entries(CHAT_MODELS)) {
  test.serial(`${type}: invoke`, async (t) => {
    const reply = await chat(model).invoke([new HumanMessage('Bonjour')]);
    t.is(reply.content, 'Hello! You said: Bonjour');
    t.true((reply.usage_metadata?.input_tokens ?? 0) > 0);
    t.is(reply.usage_metadata?.total_tokens, (reply.usage_metadata?.input_tokens ?? 0) + (reply.usage_metadata?.output_tokens ?? 0));
    t.is(reply.response_metadata.finish_reason, 'stop');
  });

  test.serial(`${type}: stream`, async (t) => {
    const pieces: string[] = [];
    let usage: AIMessageChunk['usage_metadata'];
    for await (const chunk of await chat(model).stream('stream this')) {
      if (typeof chunk.content === 'string' && chunk.content !== '') pieces.push(chunk.content);
      usage = chunk.usage_metadata ?? usage;
    }
    t.true(pieces.length > 1);
    t.is(pieces.join(''), 'Hello! You said: stream this');
    t.true((usage?.output_tokens ?? 0) > 0, 'the usage chunk reaches LangChain (stream_options.include_usage)');
  });

  test.serial(`${type}: bindTools: the tool call, then the answer to its result`, async (t) => {
    const model_ = chat(model).bindTools([weather]);
    const first = await model_.invoke([new HumanMessage('Berlin')]);
    t.is(first.tool_calls?.length, 1);
    const call = first.tool_calls![0];
    t.is(call.name, 'get_weather');
    t.deepEqual(call.args, { city: 'Berlin' });
    const result = await weather.invoke(call);
    t.true(result instanceof ToolMessage);
    const second = await model_.invoke([new HumanMessage('Berlin'), new AIMessage(first), result]);
    t.is(second.content, 'Tool result received: {"city":"Berlin","forecast":"cloudy"}');
    t.deepEqual(second.tool_calls, []);
  });

  test.serial(`${type}: withStructuredOutput (default method) parses the object`, async (t) => {
    const person = await chat(model).withStructuredOutput(Person).invoke('Grace Hopper');
    t.deepEqual(person, { name: 'Grace Hopper', age: 42, email: 'mock@example.com', languages: ['Grace Hopper'] });
    const raw = await chat(model).withStructuredOutput(Person, { includeRaw: true }).invoke('Alan');
    t.like(raw.parsed, { name: 'Alan' });
    t.true(raw.raw instanceof AIMessage);
  });
}

test.serial('OpenAIEmbeddings: embedQuery and embedDocuments', async (t) => {
  const embeddings = new OpenAIEmbeddings({ model: EMBEDDING_MODEL, apiKey: bed.apiKey, configuration: { baseURL: bed.baseURL } });
  const query = await embeddings.embedQuery('hello world');
  t.is(query.length, 8);
  const documents = await embeddings.embedDocuments(['hello world', 'goodbye world']);
  t.is(documents.length, 2);
  t.deepEqual(documents[0], query, 'the same text, the same vector (base64 from the SDK decoded to the same floats)');
  t.notDeepEqual(documents[1], query);
  const sent = bed.mock.requests.filter((r) => r.path === '/v1/embeddings').at(-1)!.body as { encoding_format: string };
  t.is(sent.encoding_format, 'float', 'eastx asks the upstream for floats whatever the client asked');
});
