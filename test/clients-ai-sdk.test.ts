import { createOpenAI } from '@ai-sdk/openai';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { embed, embedMany, generateImage, generateObject, generateText, type LanguageModel, stepCountIs, streamText, tool } from 'ai';
import test from 'ava';
import { z } from 'zod';
import { CHAT_MODELS, type ClientBed, EMBEDDING_MODEL, IMAGE_MODEL, startClientBed } from './helpers/clients.js';

// The Vercel AI SDK (`ai` 6) through both of its OpenAI providers with only baseURL and apiKey changed
// (`@ai-sdk/openai-compatible` is also told that eastx honours json_schema), on an OpenAI-type and an
// Anthropic model: generateText, streamText with a tool, generateObject, embed / embedMany, generateImage.
let bed: ClientBed;
let providers: Array<{ name: string; chat(model: string): LanguageModel }>;
let compatible: ReturnType<typeof createOpenAICompatible>;
let openai: ReturnType<typeof createOpenAI>;

test.before(async () => {
  bed = await startClientBed('clients_ai_sdk');
  compatible = createOpenAICompatible({
    name: 'eastx',
    baseURL: bed.baseURL,
    apiKey: bed.apiKey,
    includeUsage: true,
    supportsStructuredOutputs: true,
  });
  openai = createOpenAI({ baseURL: bed.baseURL, apiKey: bed.apiKey });
  providers = [
    { name: '@ai-sdk/openai-compatible', chat: (model) => compatible.chatModel(model) },
    { name: '@ai-sdk/openai', chat: (model) => openai.chat(model) },
  ];
});

test.after.always(async () => {
  await bed?.stop();
});

const Recipe = z.object({
  title: z.string(),
  servings: z.number().int().min(1).max(12),
  vegetarian: z.boolean(),
  steps: z.array(z.object({ order: z.number().int(), text: z.string() })),
});

for (const [type, model] of Object.entries(CHAT_MODELS)) {
  test.serial(`${type}: generateText`, async (t) => {
    for (const provider of providers) {
      const result = await generateText({ model: provider.chat(model), prompt: 'hello there', maxOutputTokens: 100 });
      t.is(result.text, 'Hello! You said: hello there', provider.name);
      t.is(result.finishReason, 'stop', provider.name);
      t.true((result.usage.inputTokens ?? 0) > 0 && (result.usage.outputTokens ?? 0) > 0, provider.name);
    }
  });

  test.serial(`${type}: streamText with a tool: the call streams, the tool runs, the next step answers`, async (t) => {
    for (const provider of providers) {
      const calls: unknown[] = [];
      const result = streamText({
        model: provider.chat(model),
        prompt: 'Rome',
        tools: {
          weather: tool({
            description: 'The weather in a city',
            inputSchema: z.object({ city: z.string() }),
            execute: async ({ city }) => {
              calls.push(city);
              return { city, forecast: 'sunny' };
            },
          }),
        },
        stopWhen: stepCountIs(3),
      });
      let streamed = '';
      for await (const piece of result.textStream) streamed += piece;
      const steps = await result.steps;
      t.deepEqual(calls, ['Rome'], provider.name);
      t.is(steps.length, 2, provider.name);
      t.is(steps[0].finishReason, 'tool-calls', provider.name);
      t.deepEqual(steps[0].toolCalls[0].input, { city: 'Rome' }, provider.name);
      t.is(streamed, 'Tool result received: {"city":"Rome","forecast":"sunny"}', provider.name);
      t.is(await result.text, streamed, provider.name);
      t.true(((await result.totalUsage).inputTokens ?? 0) > 0, provider.name);
    }
  });

  test.serial(`${type}: generateObject gives the object in the schema`, async (t) => {
    for (const provider of providers) {
      const { object, finishReason } = await generateObject({ model: provider.chat(model), schema: Recipe, prompt: 'Pancakes' });
      t.deepEqual(object, { title: 'Pancakes', servings: 12, vegetarian: true, steps: [{ order: 42, text: 'Pancakes' }] }, provider.name);
      t.is(finishReason, 'stop', provider.name);
    }
  });
}

test.serial('embed and embedMany through both providers', async (t) => {
  for (const [name, embeddingModel] of [
    ['@ai-sdk/openai-compatible', compatible.embeddingModel(EMBEDDING_MODEL)],
    ['@ai-sdk/openai', openai.embedding(EMBEDDING_MODEL)],
  ] as const) {
    const one = await embed({ model: embeddingModel, value: 'sunny day' });
    t.is(one.embedding.length, 8, name);
    t.true(
      one.embedding.every((x) => Number.isFinite(x) && Math.abs(x) <= 1),
      name,
    );
    t.true((one.usage.tokens ?? 0) > 0, name);
    const many = await embedMany({ model: embeddingModel, values: ['sunny day', 'rainy day', 'sunny day'] });
    t.is(many.embeddings.length, 3, name);
    t.deepEqual(many.embeddings[0], one.embedding, `${name}: the same text, the same vector`);
    t.notDeepEqual(many.embeddings[1], one.embedding, name);
  }
});

test.serial('generateImage through both providers: b64_json images, billed per image', async (t) => {
  const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  for (const [name, imageModel] of [
    ['@ai-sdk/openai', openai.image(IMAGE_MODEL)],
    ['@ai-sdk/openai-compatible', compatible.imageModel(IMAGE_MODEL)],
  ] as const) {
    const before = await bed.spent();
    const { images } = await generateImage({ model: imageModel, prompt: 'a red fox', n: 2, size: '1024x1024' });
    t.is(images.length, 2, name);
    for (const image of images) t.deepEqual(Buffer.from(image.uint8Array.subarray(0, 8)), png, name);
    t.is((await bed.spent()) - before, 40_000_000n, `${name}: 2 × $0.02`);
  }
  const submits = bed.mock.requests.filter((r) => r.path.endsWith('/image-synthesis'));
  const produced = submits.reduce((sum, r) => sum + (r.body as { parameters: { n: number } }).parameters.n, 0);
  t.is(produced, 4, 'as many images asked upstream as the clients wanted (@ai-sdk/openai asks one per call)');
});
