import test from 'ava';
import OpenAI from 'openai';
import { AdminClient } from './helpers/admin.js';
import { type Bed, startBed } from './helpers/bed.js';
import { newCustomer, postJson } from './helpers/customer.js';
import { freshEnvironment } from './helpers/env.js';
import { startGateway } from './helpers/gateway.js';
import { nano } from './helpers/money.js';

// Web and worker are separate OS processes; the worker submits DashScope tasks to the mock and polls them.
let bed: Bed;
let userId: number;
let apiKey: string;
let client: OpenAI;

const MODEL = 'test/wanx';
const SOLO_MODEL = 'test/wanx-solo';
const PRICE_PER_IMAGE = '0.04';
const SECRET = 'tok-images-main';
const SOLO_SECRET = 'tok-images-solo';
/** Fast polls keep the suite quick (the backoff shape is the same as in production); b64_json images up to 1 MiB. */
const FAST_POLLS = { IMAGE_POLL_MS: '20', IMAGE_MAX_BYTES: String(1024 * 1024) };

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

async function provision(admin: AdminClient, mockUrl: string, secret: string, model: string, maxConcurrency = 4) {
  const channel = await admin.channel(`dashscope-${secret}`, 'dashscope', mockUrl);
  await admin.token(channel.id, secret, maxConcurrency);
  await admin.model(model, {
    modality: 'image',
    vision: false,
    tools: false,
    channel_id: channel.id,
    upstream_model: 'wanx-v1',
    price_per_image: PRICE_PER_IMAGE,
    sizes: ['1024x1024', '720x1280'],
  });
  return channel;
}

test.before(async () => {
  bed = await startBed('images', { env: FAST_POLLS });
  const { admin, mock } = bed;
  const channel = await provision(admin, mock.url, SECRET, MODEL);
  await provision(admin, mock.url, SOLO_SECRET, SOLO_MODEL, 1);
  await admin.model('test/chat', { channel_id: channel.id, upstream_model: 'qwen-plus', input_price_per_1m: 1, output_price_per_1m: 2 });
  await admin.model('test/embed', {
    modality: 'embedding',
    channel_id: channel.id,
    upstream_model: 'text-embedding-v3',
    input_price_per_1m: 0.07,
  });
  ({ userId, apiKey, client } = await newCustomer(admin, 'images@example.com', '10'));
});

test.after.always(() => bed?.stop());

const post = (base: string, key: string, body: unknown) => postJson<Json>(`${base}/v1/images/generations`, key, body);

const funds = async (admin: AdminClient, id: number) => {
  const user = await admin.getUser(id);
  return { balance: nano(user.balance_usd), held: user.held_usd };
};
const submits = (secret: string) => bed.mock.requests.filter((r) => r.secret === secret && r.method === 'POST');

test.serial('images.generate: urls and revised prompts, the DashScope task wire format, billed n × price', async (t) => {
  const before = await funds(bed.admin, userId);
  const prompt = 'a lighthouse in a storm';
  const { data, response } = await client.images.generate({ model: MODEL, prompt, n: 2 }).withResponse();
  t.true(Math.abs(data.created - Date.now() / 1000) < 60);
  t.is(data.data!.length, 2);
  for (const image of data.data!) {
    t.regex(image.url!, /^http:\/\/127\.0\.0\.1:\d+\/__mock\/images\/[^/]+\/\d\.png$/);
    t.is(
      image.revised_prompt,
      `${prompt}, highly detailed, soft natural lighting, sharp focus, rich colors (revised by mock prompt extender)`,
    );
  }
  const image = await fetch(data.data![0].url!);
  t.is(image.headers.get('content-type'), 'image/png');

  const cost = 2n * nano(PRICE_PER_IMAGE);
  t.is(nano(response.headers.get('x-eastx-cost-usd')!), cost);
  t.deepEqual((data as unknown as Json).usage, {
    input_tokens: 0,
    output_tokens: 0,
    total_tokens: 0,
    input_tokens_details: { text_tokens: 0, image_tokens: 0 },
    image_count: 2,
    cost: 0.08,
  });
  const after = await funds(bed.admin, userId);
  t.is(before.balance - after.balance, cost);
  t.is(after.held, '0');
  const requestId = response.headers.get('x-request-id');
  const rows = (await bed.admin.usage(`user_id=${userId}`)).data.filter((r) => r.request_id === requestId);
  t.is(rows.length, 1);
  t.like(rows[0], { kind: 'charge', model: MODEL, images: 2 });
  t.is(nano(rows[0].amount_usd as string), -cost);

  const submit = submits(SECRET).at(-1)!;
  t.is(submit.path, '/api/v1/services/aigc/text2image/image-synthesis');
  t.is(submit.headers['x-dashscope-async'], 'enable');
  t.is(submit.headers.authorization, `Bearer ${SECRET}`);
  t.deepEqual(submit.body, { model: 'wanx-v1', input: { prompt }, parameters: { size: '1024*1024', n: 2 } });
  const polls = bed.mock.requests.filter((r) => r.method === 'GET' && r.secret === SECRET);
  t.true(polls.length >= 3, 'polled through PENDING and RUNNING to SUCCEEDED');
  t.true(polls.every((r) => r.path.startsWith('/api/v1/tasks/')));
});

/** The mock's placeholder image (src/mock/control.ts): a 1×1 PNG. */
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

test.serial('b64_json: the worker downloads each image and answers its bytes; billed per image as with urls', async (t) => {
  const before = await funds(bed.admin, userId);
  const prompt = 'a lighthouse at dawn';
  const { data, response } = await client.images.generate({ model: MODEL, prompt, n: 2, response_format: 'b64_json' }).withResponse();
  t.is(data.data!.length, 2);
  for (const image of data.data!) {
    t.is(image.url, undefined);
    const bytes = Buffer.from(image.b64_json!, 'base64');
    t.deepEqual(bytes.subarray(0, 8), PNG_SIGNATURE);
    t.deepEqual(bytes, Buffer.from(await (await fetch(`${bed.mock.url}/__mock/images/x/0.png`)).arrayBuffer()));
    t.regex(image.revised_prompt!, /^a lighthouse at dawn, highly detailed/);
  }
  const cost = 2n * nano(PRICE_PER_IMAGE);
  t.is(nano(response.headers.get('x-eastx-cost-usd')!), cost);
  t.like((data as unknown as Json).usage, { input_tokens: 0, output_tokens: 0, total_tokens: 0, image_count: 2, cost: 0.08 });
  t.is(before.balance - (await funds(bed.admin, userId)).balance, cost);
});

test.serial('b64_json: an answer of several hundred KB arrives whole (read from the kept result, not pub/sub)', async (t) => {
  bed.mock.setBehavior(SECRET, { imageDownload: { bytes: 700 * 1024 } });
  try {
    const { res, json } = await post(bed.url, apiKey, { model: MODEL, prompt: 'a big one', n: 2, response_format: 'b64_json' });
    t.is(res.status, 200);
    for (const image of json.data) t.is(Buffer.from(image.b64_json, 'base64').length, 700 * 1024);
  } finally {
    bed.mock.setBehavior(SECRET, {});
  }
});

test.serial('b64_json: an image over IMAGE_MAX_BYTES, or a download that fails, is a 502 and costs nothing', async (t) => {
  const before = await funds(bed.admin, userId);
  for (const [download, status, message] of [
    [{ bytes: 2 * 1024 * 1024 }, 502, /larger than the 1 MiB/],
    [{ status: 404 }, 502, /downloading a produced image answered HTTP 404/],
  ] as const) {
    bed.mock.setBehavior(SECRET, { imageDownload: download });
    const { res, json } = await post(bed.url, apiKey, { model: MODEL, prompt: 'too big', response_format: 'b64_json' });
    t.is(res.status, status, JSON.stringify(download));
    t.is(json.error.code, 'upstream_error');
    t.regex(json.error.message, message);
  }
  bed.mock.setBehavior(SECRET, {});
  const after = await funds(bed.admin, userId);
  t.is(after.balance, before.balance);
  t.is(after.held, '0');
});

test.serial('a listed size is sent as W*H; negative_prompt goes into the task input', async (t) => {
  const { res, json } = await post(bed.url, apiKey, { model: MODEL, prompt: 'a tall tower', size: '720x1280', negative_prompt: 'people' });
  t.is(res.status, 200);
  t.is(json.data.length, 1);
  t.deepEqual(submits(SECRET).at(-1)!.body, {
    model: 'wanx-v1',
    input: { prompt: 'a tall tower', negative_prompt: 'people' },
    parameters: { size: '720*1280', n: 1 },
  });
});

test.serial('a partial task bills only the images it produced', async (t) => {
  bed.mock.setBehavior(SECRET, { imagesProduced: 1 });
  const before = await funds(bed.admin, userId);
  const { res, json } = await post(bed.url, apiKey, { model: MODEL, prompt: 'three cats', n: 3 });
  bed.mock.setBehavior(SECRET, {});
  t.is(res.status, 200);
  t.is(json.data.length, 1);
  t.is(nano(res.headers.get('x-eastx-cost-usd')!), nano(PRICE_PER_IMAGE));
  const after = await funds(bed.admin, userId);
  t.is(before.balance - after.balance, nano(PRICE_PER_IMAGE));
  t.is(after.held, '0');
});

test.serial('a FAILED task answers 502 upstream_error with upstream_status 200 and the DashScope code, and costs nothing', async (t) => {
  bed.mock.setBehavior(SECRET, { imageFail: { code: 'DataInspectionFailed', message: 'Input data may contain inappropriate content.' } });
  const before = await funds(bed.admin, userId);
  const submitted = submits(SECRET).length;
  const { res, json } = await post(bed.url, apiKey, { model: MODEL, prompt: 'something forbidden', n: 2 });
  bed.mock.setBehavior(SECRET, {});
  t.is(res.status, 502);
  t.deepEqual(json.error, {
    code: 'upstream_error',
    message: 'Input data may contain inappropriate content.',
    type: 'upstream_error',
    param: null,
    upstream_status: 200,
    upstream_code: 'DataInspectionFailed',
  });
  t.is(submits(SECRET).length, submitted + 1, 'a failed task is not submitted again');
  const after = await funds(bed.admin, userId);
  t.is(after.balance, before.balance);
  t.is(after.held, '0');
});

test.serial('a rejected submit reaches the SDK as 502 with the upstream status, and costs nothing', async (t) => {
  bed.mock.setBehavior(SECRET, { fail: { status: 400, message: 'The size is not supported', times: 1 } });
  const before = await funds(bed.admin, userId);
  const error = await t.throwsAsync(client.images.generate({ model: MODEL, prompt: 'x' }), { instanceOf: OpenAI.APIError });
  bed.mock.setBehavior(SECRET, {});
  t.is(error!.status, 502);
  t.is((error!.error as Json).upstream_status, 400);
  t.is((await funds(bed.admin, userId)).balance, before.balance);
});

test.serial(
  'bad requests: n outside 1..4, unlisted or malformed size, unknown response_format, empty prompt → 400 naming the field',
  async (t) => {
    const cases: Array<[Json, RegExp]> = [
      [{ model: MODEL, prompt: 'x', n: 5 }, /^n: must be from 1 to 4/],
      [{ model: MODEL, prompt: 'x', n: 0 }, /^n: must be from 1 to 4/],
      [{ model: MODEL, prompt: 'x', n: 1.5 }, /^n: must be an integer/],
      [{ model: MODEL, prompt: 'x', size: '512x512' }, /^size: model test\/wanx serves 1024x1024, 720x1280; got 512x512/],
      [{ model: MODEL, prompt: 'x', size: '1024*1024' }, /^size: must be WIDTHxHEIGHT/],
      [{ model: MODEL, prompt: 'x', response_format: 'png' }, /^response_format: must be "url" or "b64_json"/],
      [{ model: MODEL, prompt: '  ' }, /^prompt: must not be empty/],
      [{ model: MODEL }, /^prompt:/],
    ];
    const before = await funds(bed.admin, userId);
    for (const [body, message] of cases) {
      const { res, json } = await post(bed.url, apiKey, body);
      t.is(res.status, 400, JSON.stringify(body));
      t.is(json.error.code, 'bad_request');
      t.regex(json.error.message, message);
    }
    t.is((await funds(bed.admin, userId)).balance, before.balance);
  },
);

test.serial('non-image models → 400 wrong_endpoint; an image model on chat → wrong_endpoint too', async (t) => {
  for (const model of ['test/chat', 'test/embed']) {
    const { res, json } = await post(bed.url, apiKey, { model, prompt: 'x' });
    t.is(res.status, 400);
    t.is(json.error.code, 'wrong_endpoint');
  }
  const chat = await postJson<Json>(`${bed.url}/v1/chat/completions`, apiKey, {
    model: MODEL,
    messages: [{ role: 'user', content: 'hi' }],
  });
  t.is(chat.res.status, 400);
  t.is(chat.json.error.code, 'wrong_endpoint');
});

test.serial('the hold is n × price: a balance that covers one image but not two gets 402 for n=2', async (t) => {
  const poor = await bed.admin.user('poor-images@example.com', '0.05');
  const key = (await bed.admin.key(poor.id)).key;
  const { res, json } = await post(bed.url, key, { model: MODEL, prompt: 'x', n: 2 });
  t.is(res.status, 402);
  t.is(json.error.code, 'insufficient_balance');
  const one = await post(bed.url, key, { model: MODEL, prompt: 'x', n: 1 });
  t.is(one.res.status, 200);
  t.is((await funds(bed.admin, poor.id)).balance, nano('0.05') - nano(PRICE_PER_IMAGE));
});

test.serial("the token's lease is held for the whole task: max_concurrency 1, two concurrent requests, one task at a time", async (t) => {
  bed.mock.setBehavior(SOLO_SECRET, { imageTaskPolls: 5 });
  const results = await Promise.all([
    client.images.generate({ model: SOLO_MODEL, prompt: 'first' }),
    client.images.generate({ model: SOLO_MODEL, prompt: 'second' }),
  ]);
  bed.mock.setBehavior(SOLO_SECRET, {});
  t.true(results.every((r) => r.data!.length === 1));
  t.is(bed.mock.stats(SOLO_SECRET).calls, 2);
  t.is(bed.mock.stats(SOLO_SECRET).maxInFlight, 1);
});

test('past the deadline: 504 upstream_timeout, the hold released, nothing charged', async (t) => {
  const secret = 'tok-images-slow';
  const { env } = await freshEnvironment('images_deadline');
  const slow = await startGateway({ ...env, ...FAST_POLLS, IMAGE_DEADLINE_MS: '1500' }, { webs: 1, workers: 1 });
  t.teardown(() => slow.stop());
  const slowAdmin = new AdminClient(slow.urls[0], env.ADMIN_TOKEN);
  await provision(slowAdmin, bed.mock.url, secret, MODEL);
  const user = await slowAdmin.user('slow-images@example.com', '1');
  const key = (await slowAdmin.key(user.id)).key;
  bed.mock.setBehavior(secret, { imageTaskPolls: 100_000 });

  const pending = post(slow.urls[0], key, { model: MODEL, prompt: 'never finishes', n: 2 });
  while (submits(secret).length === 0) await new Promise((resolve) => setTimeout(resolve, 20));
  t.is((await funds(slowAdmin, user.id)).held, '0.08', 'n × price is held while the task runs');
  const { res, json } = await pending;
  t.is(res.status, 504);
  t.is(json.error.code, 'upstream_timeout');
  const after = await funds(slowAdmin, user.id);
  t.is(after.held, '0');
  t.is(after.balance, nano('1'));
  t.is((await slowAdmin.usage(`user_id=${user.id}`)).data.filter((r) => r.kind === 'charge').length, 0);
});
