import test from 'ava';
import type OpenAI from 'openai';
import { countTokens } from '../src/mock/text.js';
import { type Bed, startBed } from './helpers/bed.js';
import { newCustomer } from './helpers/customer.js';
import { costWithCache, nano, readSse } from './helpers/money.js';
import { until } from './helpers/wait.js';

// Prompt caching billed by SPEC §3 (cache reads and writes at their own prices, one rounding), through real
// web + worker processes, against the mock's Anthropic and OpenAI prompt caches.
let bed: Bed;
let userId: number;
let apiKey: string;
let client: OpenAI;

const CLAUDE = 'cache/claude';
const GPT = 'cache/gpt';
const PLAIN = 'cache/gpt-default-prices';
const CLAUDE_PRICES = { input: 3, output: 15, cacheRead: 0.3, cacheWrite: 3.75 };
const GPT_PRICES = { input: 2.5, output: 10, cacheRead: 1.25 };
const PLAIN_PRICES = { input: 2, output: 8 };
/** Long enough to be cached (both caches want at least 1024 tokens). */
const LONG = 'The quick brown fox jumps over the lazy dog while the gateway counts every token it bills. '.repeat(80);
const EPHEMERAL = { type: 'ephemeral' };

type Json = Record<string, any>;

test.before(async () => {
  bed = await startBed('cache_billing');
  const { admin, mock } = bed;
  const anthropic = await admin.channel('cache-anthropic', 'anthropic', mock.url);
  await admin.token(anthropic.id, 'sk-ant-cache', 4);
  await admin.model(CLAUDE, {
    channel_id: anthropic.id,
    upstream_model: 'claude-sonnet-4-6',
    input_price_per_1m: CLAUDE_PRICES.input,
    output_price_per_1m: CLAUDE_PRICES.output,
    cache_read_price_per_1m: CLAUDE_PRICES.cacheRead,
    cache_write_price_per_1m: '3.75',
  });
  const openai = await admin.channel('cache-openai', 'openai', `${mock.url}/v1`);
  await admin.token(openai.id, 'sk-openai-cache', 4);
  await admin.model(GPT, {
    channel_id: openai.id,
    upstream_model: 'gpt-4o',
    input_price_per_1m: GPT_PRICES.input,
    output_price_per_1m: GPT_PRICES.output,
    cache_read_price_per_1m: GPT_PRICES.cacheRead,
  });
  await admin.model(PLAIN, {
    channel_id: openai.id,
    upstream_model: 'gpt-4o-plain',
    input_price_per_1m: PLAIN_PRICES.input,
    output_price_per_1m: PLAIN_PRICES.output,
  });
  ({ userId, apiKey, client } = await newCustomer(admin, 'cache@example.com', '10'));
});

test.after.always(() => bed?.stop());

const balance = async () => nano((await bed.admin.getUser(userId)).balance_usd);
const ledgerRow = async (requestId: string | null) =>
  (await bed.admin.usage(`user_id=${userId}`)).data.find((r) => r.request_id === requestId) as Json | undefined;

/** An Anthropic-style cached system prompt, as OpenAI clients send it (cache_control on the content part). */
const cachedSystem = (question: string) =>
  [
    { role: 'system', content: [{ type: 'text', text: LONG, cache_control: EPHEMERAL }] },
    { role: 'user', content: question },
  ] as unknown as OpenAI.ChatCompletionMessageParam[];

test.serial('Anthropic: a cold cache writes, a warm cache reads, each charged exactly by the formula', async (t) => {
  const prefix = countTokens(LONG);
  const answers: Array<{ usage: Json; cost: bigint; requestId: string | null; spent: bigint }> = [];
  for (const question of ['first question', 'second question']) {
    const before = await balance();
    const { data, response } = await client.chat.completions
      .create({ model: CLAUDE, messages: cachedSystem(question), max_tokens: 50 })
      .withResponse();
    answers.push({
      usage: data.usage as Json,
      cost: nano(response.headers.get('x-eastx-cost-usd')!),
      requestId: response.headers.get('x-request-id'),
      spent: before - (await balance()),
    });
  }
  const sent = bed.mock.requests.filter((r) => r.path === '/v1/messages').at(-1)!.body as Json;
  t.deepEqual(sent.system, [{ type: 'text', text: LONG, cache_control: EPHEMERAL }], 'cache_control reached Anthropic');

  const [cold, warm] = answers;
  t.like(cold.usage, {
    prompt_tokens_details: { cached_tokens: 0, cache_write_tokens: prefix },
    completion_tokens_details: { reasoning_tokens: 0 },
  });
  t.like(warm.usage, { prompt_tokens_details: { cached_tokens: prefix, cache_write_tokens: 0 } });
  for (const [what, answer, cached, written] of [
    ['cold', cold, 0, prefix],
    ['warm', warm, prefix, 0],
  ] as const) {
    const { prompt_tokens: prompt, completion_tokens: completion } = answer.usage;
    t.is(
      prompt,
      countTokens(`${LONG}\n${what === 'cold' ? 'first' : 'second'} question`),
      `${what}: prompt tokens include the cached ones`,
    );
    const expected = costWithCache(CLAUDE_PRICES, { prompt, completion, cached, cacheWrite: written });
    t.is(answer.cost, expected, `${what}: x-eastx-cost-usd`);
    t.is(nano(answer.usage.cost), expected, `${what}: usage.cost`);
    t.is(answer.spent, expected, `${what}: balance debited`);
    t.like(await ledgerRow(answer.requestId), {
      kind: 'charge',
      prompt_tokens: prompt,
      completion_tokens: completion,
      cached_tokens: cached,
      cache_write_tokens: written,
      estimated: false,
    });
  }
  t.true(warm.cost < cold.cost, 'a warm cache costs less');
});

test.serial('Anthropic stream with include_usage: the usage chunk shows the cache read and its exact cost', async (t) => {
  const before = await balance();
  const res = await fetch(`${bed.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      model: CLAUDE,
      messages: cachedSystem('first question'),
      max_tokens: 50,
      stream: true,
      stream_options: { include_usage: true },
    }),
  });
  const chunks = readSse(await res.text());
  const usage = chunks.at(-1).usage as Json;
  const prefix = countTokens(LONG);
  t.like(usage, { prompt_tokens_details: { cached_tokens: prefix, cache_write_tokens: 0 } });
  const expected = costWithCache(CLAUDE_PRICES, { prompt: usage.prompt_tokens, completion: usage.completion_tokens, cached: prefix });
  t.is(nano(usage.cost), expected);
  t.is(before - (await balance()), expected);
  t.like(await ledgerRow(res.headers.get('x-request-id')), { cached_tokens: prefix, cache_write_tokens: 0 });
});

/** Streams `body` to `path` and leaves after a few words; the ledger row of the request once it is billed. */
async function cutShort(t: import('ava').ExecutionContext, path: string, body: Json): Promise<Json | undefined> {
  const controller = new AbortController();
  const res = await fetch(`${bed.url}/v1/${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: controller.signal,
  });
  t.is(res.status, 200);
  const reader = res.body!.getReader();
  let seen = '';
  while ((seen.match(/slow/g) ?? []).length < 3) {
    const { value, done } = await reader.read();
    if (done) break;
    seen += new TextDecoder().decode(value);
  }
  t.false(seen.includes('promptUsage'), "the gateway's own field is never relayed");
  controller.abort();
  return until(
    () => ledgerRow(res.headers.get('x-request-id')),
    (r) => r !== undefined,
    8_000,
    50,
  );
}

test.serial('Anthropic chat stream cut short: the prompt is billed as message_start reported it, cache read at its price', async (t) => {
  bed.mock.setBehavior('sk-ant-cache', { chunkDelayMs: 50, reply: Array(60).fill('slow').join(' ') });
  try {
    const row = await cutShort(t, 'chat/completions', {
      model: CLAUDE,
      messages: cachedSystem('cut me short'),
      max_tokens: 200,
      stream: true,
    });
    const prefix = countTokens(LONG);
    t.like(row, { estimated: true, cached_tokens: prefix, cache_write_tokens: 0 });
    const expected = costWithCache(CLAUDE_PRICES, { prompt: row!.prompt_tokens, completion: row!.completion_tokens, cached: prefix });
    t.is(-nano(row!.amount_usd), expected, 'cache reads at the cache-read price');
  } finally {
    bed.mock.setBehavior('sk-ant-cache', {});
  }
});

test.serial(
  "Anthropic Responses stream cut short: the prompt is billed as the upstream counted it, not the gateway's estimate",
  async (t) => {
    const input = [{ role: 'user', content: 'Count me as the upstream does, please, with all these words in it.' }];
    const whole = await client.responses.create({
      model: CLAUDE,
      input: input as OpenAI.Responses.ResponseInput,
      max_output_tokens: 20,
      store: false,
    });
    bed.mock.setBehavior('sk-ant-cache', { chunkDelayMs: 50, reply: Array(60).fill('slow').join(' ') });
    try {
      const row = await cutShort(t, 'responses', { model: CLAUDE, input, max_output_tokens: 200, stream: true, store: false });
      t.like(row, { estimated: true, prompt_tokens: whole.usage!.input_tokens });
    } finally {
      bed.mock.setBehavior('sk-ant-cache', {});
    }
  },
);

test.serial("OpenAI: the upstream's cached_tokens are billed at the cache-read price, writes at the input price", async (t) => {
  const messages: OpenAI.ChatCompletionMessageParam[] = [
    { role: 'system', content: LONG },
    { role: 'user', content: 'what is cached?' },
  ];
  const first = await client.chat.completions.create({ model: GPT, messages, max_tokens: 40 }).withResponse();
  t.is(first.data.usage?.prompt_tokens_details?.cached_tokens, 0);
  const before = await balance();
  const { data, response } = await client.chat.completions.create({ model: GPT, messages, max_tokens: 40 }).withResponse();
  const usage = data.usage!;
  const cached = Math.floor(countTokens(LONG) / 128) * 128;
  t.is(usage.prompt_tokens_details?.cached_tokens, cached, 'OpenAI caches in 128-token steps');
  t.is(usage.completion_tokens_details?.reasoning_tokens, 0);
  const expected = costWithCache(GPT_PRICES, { prompt: usage.prompt_tokens, completion: usage.completion_tokens, cached });
  t.is(nano(response.headers.get('x-eastx-cost-usd')!), expected);
  t.is(before - (await balance()), expected);
  t.like(await ledgerRow(response.headers.get('x-request-id')), { cached_tokens: cached, cache_write_tokens: 0 });
});

test.serial('a model without cache prices bills cached tokens at its input price; the admin API shows the prices billed', async (t) => {
  const messages: OpenAI.ChatCompletionMessageParam[] = [
    { role: 'system', content: LONG },
    { role: 'user', content: 'default prices?' },
  ];
  await client.chat.completions.create({ model: PLAIN, messages, max_tokens: 20 });
  const { data, response } = await client.chat.completions.create({ model: PLAIN, messages, max_tokens: 20 }).withResponse();
  const usage = data.usage!;
  t.true((usage.prompt_tokens_details?.cached_tokens ?? 0) > 0);
  const plain = costWithCache(PLAIN_PRICES, { prompt: usage.prompt_tokens, completion: usage.completion_tokens });
  t.is(nano(response.headers.get('x-eastx-cost-usd')!), plain);

  const models = (await bed.admin.call<{ data: Json[] }>('GET', '/admin/api/models')).data;
  t.like(
    models.find((m) => m.id === PLAIN),
    { input_price_per_1m: '2', cache_read_price_per_1m: '2', cache_write_price_per_1m: '2' },
  );
  t.like(
    models.find((m) => m.id === CLAUDE),
    { input_price_per_1m: '3', cache_read_price_per_1m: '0.3', cache_write_price_per_1m: '3.75' },
  );
  t.like(
    models.find((m) => m.id === GPT),
    { cache_read_price_per_1m: '1.25', cache_write_price_per_1m: '2.5' },
  );
});

test.serial('GET /v1/models shows the cache prices of chat models', async (t) => {
  const entry = (id: string) => client.models.retrieve(id) as Promise<unknown> as Promise<Json>;
  t.like(await entry(CLAUDE), { input_price_per_1m: 3, cache_read_price_per_1m: 0.3, cache_write_price_per_1m: 3.75 });
  t.like(await entry(PLAIN), { input_price_per_1m: 2, cache_read_price_per_1m: 2, cache_write_price_per_1m: 2 });
});

test.serial('cache prices are validated like every price: 400 naming the field', async (t) => {
  for (const [field, value] of [
    ['cache_read_price_per_1m', -1],
    ['cache_write_price_per_1m', '0.1234567'],
    ['cache_read_price_per_1m', 'cheap'],
  ] as const) {
    const res = await fetch(`${bed.url}/admin/api/models/${encodeURIComponent('cache/bad')}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${bed.env.ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        display_name: 'bad',
        owned_by: 'test',
        modality: 'chat',
        status: 'active',
        channel_id: 1,
        upstream_model: 'x',
        [field]: value,
      }),
    });
    t.is(res.status, 400, `${field}=${value}`);
    const body = (await res.json()) as Json;
    t.is(body.error.code, 'bad_request');
    t.regex(body.error.message, new RegExp(`^${field}:`));
  }
});
