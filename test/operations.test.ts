import test from 'ava';
import { Queue } from 'bullmq';
import { createRedis, type Redis } from '../src/redis/index.js';
import { type Bed, startBed } from './helpers/bed.js';
import { postJson } from './helpers/customer.js';
import { freePort, logsOf, startGateway } from './helpers/gateway.js';

// The operator's surface (SPEC §5): health, readiness, metrics, Bull Board, JSON logs without secrets.
let bed: Bed;
let apiKey: string;
let channelId: number;
let redis: Redis;
const METRICS_TOKEN = 'metrics-secret-token';
const UPSTREAM_SECRET = 'ops-upstream-secret-1234';
const PROMPT = 'a very private prompt text 42';

test.before(async () => {
  bed = await startBed('operations', { env: { METRICS_TOKEN, LOG_LEVEL: 'info' } });
  const { admin, mock, env, url } = bed;
  const channel = await admin.channel('ops', 'openai', `${mock.url}/v1`);
  channelId = channel.id;
  await admin.token(channel.id, UPSTREAM_SECRET, 4);
  await admin.model('ops/chat', { channel_id: channel.id, upstream_model: 'up', input_price_per_1m: 1, output_price_per_1m: 1 });
  const user = await admin.user('ops@example.com', '1');
  apiKey = (await admin.key(user.id)).key;
  redis = createRedis(env.REDIS_URL);
  const { res } = await postJson(`${url}/v1/chat/completions`, apiKey, {
    model: 'ops/chat',
    messages: [{ role: 'user', content: PROMPT }],
    max_tokens: 10,
  });
  if (res.status !== 200) throw new Error(`setup chat failed: ${res.status}`);
});

test.after.always(async () => {
  await bed?.stop();
  await redis?.quit();
});

test('healthz and readyz answer 200 JSON', async (t) => {
  const health = await fetch(`${bed.url}/healthz`);
  t.is(health.status, 200);
  const ready = await fetch(`${bed.url}/readyz`);
  t.is(ready.status, 200);
  t.deepEqual(await ready.json(), { status: 'ready', mysql: 'ok', redis: 'ok' });
});

test('/metrics needs METRICS_TOKEN and reports HTTP traffic, queue depths and token leases', async (t) => {
  t.is((await fetch(`${bed.url}/metrics`)).status, 401);
  t.is(
    (await fetch(`${bed.url}/metrics`, { headers: { authorization: `Bearer ${bed.env.ADMIN_TOKEN}` } })).status,
    401,
    'METRICS_TOKEN, when set, is the only key',
  );
  const res = await fetch(`${bed.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
  t.is(res.status, 200);
  const text = await res.text();
  t.regex(text, /eastx_http_requests_total\{route="\/v1\/chat\/completions",status="200"\} 1/);
  t.regex(text, new RegExp(`eastx_queue_jobs\\{queue="channel-${channelId}",state="completed"\\} 1`));
  t.regex(text, /eastx_upstream_token_in_flight\{channel="\d+",token="\d+"\} 0/);
  t.regex(text, /eastx_process_resident_memory_bytes/);
});

test('Bull Board at /admin/queues: 401 with a Basic challenge without the admin token, the board with it', async (t) => {
  const anonymous = await fetch(`${bed.url}/admin/queues`);
  t.is(anonymous.status, 401);
  t.regex(anonymous.headers.get('www-authenticate') ?? '', /^Basic/);
  t.is(((await anonymous.json()) as { error: { code: string } }).error.code, 'missing_key');
  const wrong = await fetch(`${bed.url}/admin/queues`, {
    headers: { authorization: `Basic ${Buffer.from('admin:nope').toString('base64')}` },
  });
  t.is(wrong.status, 401);
  t.is(((await wrong.json()) as { error: { code: string } }).error.code, 'invalid_key');
  const page = await fetch(`${bed.url}/admin/queues`, { headers: { authorization: `Bearer ${bed.env.ADMIN_TOKEN}` } });
  t.is(page.status, 200);
  t.regex(page.headers.get('content-type') ?? '', /html/);
  const basic = Buffer.from(`admin:${bed.env.ADMIN_TOKEN}`).toString('base64');
  const api = await fetch(`${bed.url}/admin/queues/api/queues`, { headers: { authorization: `Basic ${basic}` } });
  t.is(api.status, 200);
  const body = (await api.json()) as { queues: Array<{ name: string }> };
  t.true(body.queues.some((q) => q.name === `channel-${channelId}`));
});

test('job data names the model and holds no secret: not the API key, not the upstream token', async (t) => {
  const queue = new Queue(`channel-${channelId}`, { connection: redis, prefix: `{${bed.env.QUEUE_PREFIX}}` });
  const [job] = await queue.getJobs(['completed']);
  await queue.close();
  t.truthy(job);
  t.is(job.name, 'chat ops/chat');
  const data = JSON.stringify(job.data);
  t.false(data.includes(apiKey));
  t.false(data.includes(apiKey.slice('sk-eastx-'.length)));
  t.false(data.includes(UPSTREAM_SECRET));
  t.is((job.returnvalue as { status: string }).status, 'ok');
});

test('JSON access logs carry the request id and never the key, the upstream token or the prompt', async (t) => {
  const res = await fetch(`${bed.url}/v1/models`, { headers: { authorization: `Bearer ${apiKey}` } });
  const requestId = res.headers.get('x-request-id');
  const logged = await logsOf([...bed.gateway.webs, ...bed.gateway.workers], (all) =>
    all.some((l) => requestId !== null && l.includes(requestId)),
  );
  const entry = logged
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .find((e) => e.requestId === requestId);
  t.truthy(entry, 'one JSON line for the request');
  t.is(entry!.status, 200);
  t.is(entry!.path, '/v1/models');
  const everything = logged.join('\n');
  t.false(everything.includes(apiKey.slice('sk-eastx-'.length)));
  t.false(everything.includes(UPSTREAM_SECRET));
  t.false(everything.includes(PROMPT));
});

test('/metrics with MySQL down: 200 with the process metrics, the catalog-fed gauges left empty and counted', async (t) => {
  // a web process of its own whose MariaDB is not there: it has never loaded the catalog
  const gateway = await startGateway(
    { ...bed.env, METRICS_TOKEN, DATABASE_URL: `mysql://root@127.0.0.1:${await freePort()}/eastx` },
    { webs: 1, workers: 0 },
  );
  try {
    const [url] = gateway.urls;
    t.is((await fetch(`${url}/readyz`)).status, 503);
    const scrape = async () => {
      const res = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
      t.is(res.status, 200);
      return res.text();
    };
    const first = await scrape();
    t.regex(first, /^eastx_process_cpu_seconds_total \d/m, 'the process metrics are there');
    t.notRegex(first, /^eastx_queue_jobs\{/m, 'no stale or made-up queue depths');
    // the counter is written out before the gauges are read: a scrape's failures show from the next one
    const second = await scrape();
    t.regex(second, /^eastx_metrics_scrape_errors_total\{metric="eastx_queue_jobs"\} [1-9]/m);
    t.regex(second, /^eastx_metrics_scrape_errors_total\{metric="eastx_route_state"\} [1-9]/m);
  } finally {
    await gateway.stop();
  }
});
