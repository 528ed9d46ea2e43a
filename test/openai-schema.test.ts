import test, { type ExecutionContext } from 'ava';
import { type Bed, startBed } from './helpers/bed.js';
import { newCustomer } from './helpers/customer.js';
import { readSse } from './helpers/money.js';
import { assertFitsOpenAI } from './helpers/openapi.js';

// Every /v1 answer, for an OpenAI-type, an Anthropic and a DashScope channel, validated with ajv (JSON Schema
// 2020-12) against OpenAI's published component schemas (test/fixtures, from ../shared/openai-openapi).
let bed: Bed;
let apiKey: string;
let poorKey: string;

type Json = Record<string, any>;

const CHANNELS = ['openai', 'anthropic', 'dashscope'] as const;
type ChannelType = (typeof CHANNELS)[number];
const chatModel = (type: ChannelType) => `schema/${type}-chat`;
const EMBEDDING_MODELS = ['schema/openai-embed', 'schema/dashscope-embed'];
const IMAGE_MODEL = 'schema/dashscope-image';
const SECRETS: Record<ChannelType, string> = { openai: 'sk-schema-openai', anthropic: 'sk-ant-schema', dashscope: 'sk-schema-dashscope' };

const WEATHER_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};

test.before(async () => {
  bed = await startBed('openai_schema', { env: { IMAGE_POLL_MS: '20' } });
  const { admin, mock } = bed;
  const baseUrl: Record<ChannelType, string> = { openai: `${mock.url}/v1`, anthropic: mock.url, dashscope: mock.url };
  const channels: Partial<Record<ChannelType, number>> = {};
  for (const type of CHANNELS) {
    const channel = await admin.channel(`schema-${type}`, type, baseUrl[type]);
    await admin.token(channel.id, SECRETS[type], 8);
    channels[type] = channel.id;
    await admin.model(chatModel(type), {
      channel_id: channel.id,
      upstream_model: `${type}-model`,
      input_price_per_1m: 1,
      output_price_per_1m: 2,
    });
  }
  for (const [id, type] of [
    ['schema/openai-embed', 'openai'],
    ['schema/dashscope-embed', 'dashscope'],
  ] as const) {
    await admin.model(id, { modality: 'embedding', channel_id: channels[type], upstream_model: 'embed-model', input_price_per_1m: 0.02 });
  }
  await admin.model(IMAGE_MODEL, {
    modality: 'image',
    vision: false,
    tools: false,
    channel_id: channels.dashscope,
    upstream_model: 'wanx-v1',
    price_per_image: 0.02,
  });
  ({ apiKey } = await newCustomer(admin, 'schema@example.com', '20'));
  ({ apiKey: poorKey } = await newCustomer(admin, 'schema-poor@example.com', '0.0000001'));
});

test.after.always(() => bed?.stop());

async function call(method: string, path: string, body?: unknown, key = apiKey) {
  const res = await fetch(`${bed.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { res, text: await res.text() };
}

async function json(t: ExecutionContext, method: string, path: string, body?: unknown, status = 200): Promise<Json> {
  const { res, text } = await call(method, path, body);
  t.is(res.status, status, `${method} ${path}: ${text.slice(0, 300)}`);
  return JSON.parse(text) as Json;
}

/** Every chunk of a stream, each validated; returns them. */
async function stream(t: ExecutionContext, body: Json, what: string): Promise<Json[]> {
  const { res, text } = await call('POST', '/v1/chat/completions', { ...body, stream: true, stream_options: { include_usage: true } });
  t.is(res.status, 200, what);
  t.true(text.endsWith('data: [DONE]\n\n'), what);
  const chunks = readSse(text) as Json[];
  t.true(chunks.length >= 3, what);
  chunks.forEach((chunk, i) => assertFitsOpenAI(t, 'CreateChatCompletionStreamResponse', chunk, `${what}, chunk ${i}`));
  return chunks;
}

test.serial('models: the list and every entry, also retrieved one by one', async (t) => {
  const list = await json(t, 'GET', '/v1/models');
  assertFitsOpenAI(t, 'ListModelsResponse', list);
  t.is(list.data.length, CHANNELS.length + EMBEDDING_MODELS.length + 1);
  for (const entry of list.data) {
    assertFitsOpenAI(t, 'Model', entry, entry.id);
    assertFitsOpenAI(t, 'Model', await json(t, 'GET', `/v1/models/${encodeURIComponent(entry.id)}`), `retrieve ${entry.id}`);
  }
});

for (const type of CHANNELS) {
  const model = chatModel(type);

  test.serial(`${type} channel: chat completion with text, and with a tool call`, async (t) => {
    const text = await json(t, 'POST', '/v1/chat/completions', { model, messages: [{ role: 'user', content: 'hello' }], max_tokens: 40 });
    assertFitsOpenAI(t, 'CreateChatCompletionResponse', text, `${type} text`);
    t.is(text.choices[0].message.content, 'Hello! You said: hello');

    const tool = await json(t, 'POST', '/v1/chat/completions', {
      model,
      messages: [{ role: 'user', content: 'Paris' }],
      tools: [WEATHER_TOOL],
      max_tokens: 40,
    });
    assertFitsOpenAI(t, 'CreateChatCompletionResponse', tool, `${type} tool call`);
    t.is(tool.choices[0].finish_reason, 'tool_calls');
    t.deepEqual(JSON.parse(tool.choices[0].message.tool_calls[0].function.arguments), { city: 'Paris' });

    const structured = await json(t, 'POST', '/v1/chat/completions', {
      model,
      messages: [{ role: 'user', content: 'Ada' }],
      response_format: {
        type: 'json_schema',
        json_schema: {
          name: 'person',
          strict: true,
          schema: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] },
        },
      },
      max_tokens: 40,
    });
    assertFitsOpenAI(t, 'CreateChatCompletionResponse', structured, `${type} json_schema`);
    t.deepEqual(JSON.parse(structured.choices[0].message.content), { name: 'Ada' });
    t.is(structured.choices[0].finish_reason, 'stop');
  });

  test.serial(`${type} channel: every stream chunk (text, tool-call deltas, usage chunk)`, async (t) => {
    const text = await stream(t, { model, messages: [{ role: 'user', content: 'stream' }], max_tokens: 40 }, `${type} text stream`);
    t.is(text.map((c) => c.choices[0]?.delta?.content ?? '').join(''), 'Hello! You said: stream');
    t.like(text.at(-1), { choices: [], usage: { prompt_tokens_details: { cached_tokens: 0 } } });

    const tools = await stream(
      t,
      { model, messages: [{ role: 'user', content: 'Oslo' }], tools: [WEATHER_TOOL], max_tokens: 40 },
      `${type} tool stream`,
    );
    const fragments = tools.flatMap((c) => c.choices[0]?.delta?.tool_calls ?? []).map((call: Json) => call.function?.arguments ?? '');
    t.deepEqual(JSON.parse(fragments.join('')), { city: 'Oslo' });
  });

  test.serial(`${type} channel: error bodies (400, 402, 404, 502, and the SSE error event)`, async (t) => {
    const errors: Array<[string, Promise<{ res: Response; text: string }>, number]> = [
      ['400', call('POST', '/v1/chat/completions', { model, messages: [] }), 400],
      ['402', call('POST', '/v1/chat/completions', { model, messages: [{ role: 'user', content: 'x' }] }, poorKey), 402],
      ['404', call('POST', '/v1/chat/completions', { model: `${model}-nope`, messages: [{ role: 'user', content: 'x' }] }), 404],
    ];
    for (const [what, answer, status] of errors) {
      const { res, text } = await answer;
      t.is(res.status, status, what);
      assertFitsOpenAI(t, 'ErrorResponse', JSON.parse(text), `${type} ${what}`);
    }
    bed.mock.setBehavior(SECRETS[type], { fail: { status: 400, message: 'upstream refuses', times: 1 } });
    const failed = await call('POST', '/v1/chat/completions', { model, messages: [{ role: 'user', content: 'x' }] });
    t.is(failed.res.status, 502);
    assertFitsOpenAI(t, 'ErrorResponse', JSON.parse(failed.text), `${type} 502`);

    bed.mock.setBehavior(SECRETS[type], { midStreamResetAfter: 2, chunkDelayMs: 5 });
    try {
      const cut = await call('POST', '/v1/chat/completions', {
        model,
        stream: true,
        messages: [{ role: 'user', content: 'a long story please, with many words' }],
      });
      t.is(cut.res.status, 200);
      const events = readSse(cut.text) as Json[];
      events.slice(0, -1).forEach((chunk, i) => assertFitsOpenAI(t, 'CreateChatCompletionStreamResponse', chunk, `${type} cut chunk ${i}`));
      assertFitsOpenAI(t, 'ErrorResponse', events.at(-1), `${type} SSE error event`);
    } finally {
      bed.mock.setBehavior(SECRETS[type], {});
    }
  });
}

test.serial('embeddings: float answers fit; base64 differs only in the embedding being a string', async (t) => {
  for (const model of EMBEDDING_MODELS) {
    const floats = await json(t, 'POST', '/v1/embeddings', { model, input: ['one', 'two'], encoding_format: 'float' });
    assertFitsOpenAI(t, 'CreateEmbeddingResponse', floats, `${model} float`);
    const base64 = await json(t, 'POST', '/v1/embeddings', { model, input: ['one', 'two'], encoding_format: 'base64' });
    t.true(base64.data.every((item: Json) => typeof item.embedding === 'string'));
    // the accepted difference: OpenAI's schema types `embedding` as floats even for base64 answers
    const decoded = {
      ...base64,
      data: base64.data.map((item: Json) => {
        const bytes = Buffer.from(item.embedding, 'base64');
        return { ...item, embedding: Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readFloatLE(i * 4)) };
      }),
    };
    assertFitsOpenAI(t, 'CreateEmbeddingResponse', decoded, `${model} base64 (decoded)`);
    t.deepEqual(
      decoded.data.map((d: Json) => d.embedding),
      floats.data.map((d: Json) => d.embedding),
    );
  }
});

test.serial('images: url and b64_json answers', async (t) => {
  const urls = await json(t, 'POST', '/v1/images/generations', { model: IMAGE_MODEL, prompt: 'a cat', n: 2 });
  assertFitsOpenAI(t, 'ImagesResponse', urls, 'url');
  t.truthy(urls.data[0].url);
  const b64 = await json(t, 'POST', '/v1/images/generations', { model: IMAGE_MODEL, prompt: 'a cat', response_format: 'b64_json' });
  assertFitsOpenAI(t, 'ImagesResponse', b64, 'b64_json');
  t.truthy(b64.data[0].b64_json);
  const bad = await json(t, 'POST', '/v1/images/generations', { model: IMAGE_MODEL, prompt: 'a cat', n: 9 }, 400);
  assertFitsOpenAI(t, 'ErrorResponse', bad, 'images 400');
});
