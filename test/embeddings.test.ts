import test from 'ava';
import type OpenAI from 'openai';
import { countTokens, embeddingVector } from '../src/mock/text.js';
import { type Bed, startBed } from './helpers/bed.js';
import { newCustomer, postJson } from './helpers/customer.js';
import { costOf, nano } from './helpers/money.js';

// Web and worker are separate OS processes: every call crosses the BullMQ queue to the mock upstream.
let bed: Bed;
let userId: number;
let apiKey: string;
let client: OpenAI;

const OPENAI_MODEL = 'test/embed-openai';
const DASHSCOPE_MODEL = 'test/embed-dashscope';
const OPENAI_PRICES = { input: 0.02, output: 0 };
const DASHSCOPE_PRICES = { input: 0.07, output: 0 };
const OPENAI_SECRET = 'tok-embed-openai';
const DASHSCOPE_SECRET = 'tok-embed-dashscope';

test.before(async () => {
  bed = await startBed('embeddings');
  const { admin, mock } = bed;
  const openaiChannel = await admin.channel('mock-openai', 'openai', `${mock.url}/v1`);
  await admin.token(openaiChannel.id, OPENAI_SECRET, 4);
  const dashscopeChannel = await admin.channel('mock-dashscope', 'dashscope', mock.url);
  await admin.token(dashscopeChannel.id, DASHSCOPE_SECRET, 4);
  const embedding = { modality: 'embedding', vision: false, tools: false };
  await admin.model(OPENAI_MODEL, {
    ...embedding,
    channel_id: openaiChannel.id,
    upstream_model: 'mock-embed',
    input_price_per_1m: OPENAI_PRICES.input,
  });
  await admin.model(DASHSCOPE_MODEL, {
    ...embedding,
    channel_id: dashscopeChannel.id,
    upstream_model: 'text-embedding-v3',
    input_price_per_1m: DASHSCOPE_PRICES.input,
  });
  await admin.model('test/chat', {
    channel_id: openaiChannel.id,
    upstream_model: 'mock-gpt',
    input_price_per_1m: 1,
    output_price_per_1m: 2,
  });
  await admin.model('test/image', { modality: 'image', channel_id: dashscopeChannel.id, upstream_model: 'wanx-v1', price_per_image: 0.04 });
  ({ userId, apiKey, client } = await newCustomer(admin, 'embeddings@example.com', '5'));
});

test.after.always(() => bed?.stop());

const post = (path: string, body: unknown) => postJson(`${bed.url}${path}`, apiKey, body);

const balance = async () => nano((await bed.admin.getUser(userId)).balance_usd);
const lastUpstreamBody = () => bed.mock.requests.at(-1)!.body as Record<string, unknown>;
const decodeFloat32 = (b64: string) => {
  const bytes = Buffer.from(b64, 'base64');
  return Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readFloatLE(i * 4));
};

for (const [label, model, prices] of [
  ['openai', OPENAI_MODEL, OPENAI_PRICES],
  ['dashscope', DASHSCOPE_MODEL, DASHSCOPE_PRICES],
] as const) {
  test.serial(`${label} channel: the SDK's default (base64) decodes to exactly the upstream's floats, billed exactly`, async (t) => {
    const before = await balance();
    const input = `the quick brown fox on ${label}`;
    const { data, response } = await client.embeddings.create({ model, input }).withResponse();
    t.is(data.object, 'list');
    t.is(data.model, model);
    t.is(data.data.length, 1);
    t.deepEqual(Array.from(data.data[0].embedding), embeddingVector(input), 'little-endian float32 of the upstream vector');
    t.is(lastUpstreamBody().encoding_format, 'float', 'the gateway always asks the upstream for floats');

    const promptTokens = countTokens(input);
    t.is(data.usage.prompt_tokens, promptTokens);
    t.is(data.usage.total_tokens, promptTokens);
    const cost = costOf(prices, promptTokens, 0);
    t.true(cost > 0n);
    t.is(nano(response.headers.get('x-eastx-cost-usd')!), cost);
    t.is(nano((data.usage as unknown as { cost: number }).cost), cost);
    t.is(before - (await balance()), cost);
    t.is((await bed.admin.getUser(userId)).held_usd, '0');

    const requestId = response.headers.get('x-request-id');
    const rows = (await bed.admin.usage(`user_id=${userId}`)).data.filter((r) => r.request_id === requestId);
    t.is(rows.length, 1);
    t.like(rows[0], { kind: 'charge', model, prompt_tokens: promptTokens, completion_tokens: 0, images: 0 });
    t.is(nano(rows[0].amount_usd as string), -cost);
  });

  test.serial(`${label} channel: array input through the SDK, in order, one charge for all items`, async (t) => {
    const before = await balance();
    const inputs = ['alpha', 'beta gamma', 'δέλτα'];
    const data = await client.embeddings.create({ model, input: inputs });
    t.deepEqual(
      data.data.map((d) => d.index),
      [0, 1, 2],
    );
    data.data.forEach((d, i) => t.deepEqual(Array.from(d.embedding), embeddingVector(inputs[i])));
    const promptTokens = inputs.reduce((sum, s) => sum + countTokens(s), 0);
    t.is(data.usage.prompt_tokens, promptTokens);
    t.is(before - (await balance()), costOf(prices, promptTokens, 0));
  });

  test.serial(`${label} channel: encoding_format float and base64 on the wire`, async (t) => {
    const floats = await client.embeddings.create({ model, input: 'wire check', encoding_format: 'float' });
    t.deepEqual(floats.data[0].embedding, embeddingVector('wire check'));

    const { res, json } = await post('/v1/embeddings', { model, input: 'wire check', encoding_format: 'base64' });
    t.is(res.status, 200);
    t.is(typeof json.data[0].embedding, 'string');
    t.deepEqual(decodeFloat32(json.data[0].embedding), embeddingVector('wire check'));
  });

  test.serial(`${label} channel: dimensions and user pass through`, async (t) => {
    const data = await client.embeddings.create({ model, input: 'short vector', dimensions: 4, user: 'user-42' });
    t.deepEqual(Array.from(data.data[0].embedding), embeddingVector('short vector', 4));
    t.like(lastUpstreamBody(), { dimensions: 4, user: 'user-42' });
  });
}

test.serial('token arrays reach an openai channel; a dashscope channel answers 400', async (t) => {
  const data = await client.embeddings.create({ model: OPENAI_MODEL, input: [[1, 2, 3], [7]], encoding_format: 'float' });
  t.deepEqual(data.data[0].embedding, embeddingVector('tokens:1,2,3'));
  t.deepEqual(data.data[1].embedding, embeddingVector('tokens:7'));
  t.deepEqual(lastUpstreamBody().input, [[1, 2, 3], [7]]);
  t.is(data.usage.prompt_tokens, 4);

  const single = await client.embeddings.create({ model: OPENAI_MODEL, input: [5, 6], encoding_format: 'float' });
  t.deepEqual(single.data[0].embedding, embeddingVector('tokens:5,6'));

  const before = await balance();
  const { res, json } = await post('/v1/embeddings', { model: DASHSCOPE_MODEL, input: [[1, 2, 3]] });
  t.is(res.status, 400);
  t.is(json.error.code, 'bad_request');
  t.regex(json.error.message, /text only/);
  t.is(await balance(), before);
});

test.serial('bad input: empty, over the 2048-item limit, wrong types → 400 bad_request naming the field', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [{ model: OPENAI_MODEL, input: '' }, /^input: must not be an empty string/],
    [{ model: OPENAI_MODEL, input: [] }, /^input: must not be an empty array/],
    [{ model: OPENAI_MODEL, input: ['ok', ''] }, /^input\[1\]: must not be an empty string/],
    [{ model: OPENAI_MODEL, input: Array.from({ length: 2049 }, (_, i) => `item ${i}`) }, /^input: at most 2048 items/],
    [{ model: OPENAI_MODEL }, /^input: required/],
    [{ model: OPENAI_MODEL, input: [{ text: 'x' }] }, /^input: must be a string/],
    [{ model: OPENAI_MODEL, input: 'x', encoding_format: 'int8' }, /^encoding_format:/],
    [{ model: OPENAI_MODEL, input: 'x', dimensions: 0 }, /^dimensions:/],
    [{ input: 'x' }, /^model:/],
  ];
  for (const [body, message] of cases) {
    const { res, json } = await post('/v1/embeddings', body);
    t.is(res.status, 400, JSON.stringify(body).slice(0, 80));
    t.is(json.error.code, 'bad_request');
    t.regex(json.error.message, message);
  }
  const ok = await client.embeddings.create({ model: OPENAI_MODEL, input: Array.from({ length: 2048 }, (_, i) => `item ${i}`) });
  t.is(ok.data.length, 2048, 'exactly 2048 items are fine');
});

test.serial('wrong_endpoint both ways: chat and image models on /v1/embeddings, an embedding model on chat', async (t) => {
  for (const model of ['test/chat', 'test/image']) {
    const { res, json } = await post('/v1/embeddings', { model, input: 'hello' });
    t.is(res.status, 400);
    t.is(json.error.code, 'wrong_endpoint');
    t.is(json.error.type, 'invalid_request_error');
  }
  const { res, json } = await post('/v1/chat/completions', { model: OPENAI_MODEL, messages: [{ role: 'user', content: 'hi' }] });
  t.is(res.status, 400);
  t.is(json.error.code, 'wrong_endpoint');

  const unknown = await post('/v1/embeddings', { model: 'test/nope', input: 'hello' });
  t.is(unknown.res.status, 404);
  t.is(unknown.json.error.code, 'model_not_found');
});

test.serial('an upstream error answers 502 with the upstream status and costs nothing', async (t) => {
  bed.mock.setBehavior(OPENAI_SECRET, { fail: { status: 400, message: 'input too long for this model', times: 1 } });
  const before = await balance();
  const { res, json } = await post('/v1/embeddings', { model: OPENAI_MODEL, input: 'anything' });
  bed.mock.setBehavior(OPENAI_SECRET, {});
  t.is(res.status, 502);
  t.is(json.error.code, 'upstream_error');
  t.is(json.error.upstream_status, 400);
  t.regex(json.error.message, /input too long/);
  t.is(await balance(), before);
  t.is((await bed.admin.getUser(userId)).held_usd, '0');
});
