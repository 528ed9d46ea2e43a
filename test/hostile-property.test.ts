import { request } from 'node:http';
import test from 'ava';
import fc from 'fast-check';
import { sql } from 'kysely';
import { auditLedger } from '../src/billing/audit.js';
import { createDb, type Db } from '../src/db/index.js';
import { ERRORS } from '../src/http/errors.js';
import { type Bed, startBed } from './helpers/bed.js';
import { newCustomer } from './helpers/customer.js';

// Seeded random hostile requests against the /v1 (Messages and Responses included) and admin routes: every answer is a contract answer,
// nothing refused reaches the upstream or the ledger, and the process is healthy afterwards.
let bed: Bed;
let db: Db;
let apiKey: string;
const MODEL = 'prop/chat';
const CLAUDE = 'prop/claude';
const SEED = 20_261_130;

test.before(async () => {
  bed = await startBed('hostile_property', { env: { BODY_LIMIT_BYTES: String(64 * 1024) } });
  const { admin, mock } = bed;
  db = createDb(bed.env.DATABASE_URL, 2);
  const channel = await admin.channel('prop-openai', 'openai', `${mock.url}/v1`);
  await admin.token(channel.id, 'tok-prop', 8);
  await admin.model(MODEL, { channel_id: channel.id, upstream_model: 'mock-gpt', input_price_per_1m: 1, output_price_per_1m: 2 });
  await admin.model('prop/embed', { channel_id: channel.id, upstream_model: 'mock-embed', modality: 'embedding', input_price_per_1m: 1 });
  const anthropic = await admin.channel('prop-anthropic', 'anthropic', mock.url);
  await admin.token(anthropic.id, 'tok-prop-anthropic', 8);
  await admin.model(CLAUDE, {
    channel_id: anthropic.id,
    upstream_model: 'claude-sonnet-4-6',
    input_price_per_1m: 3,
    output_price_per_1m: 15,
  });
  ({ apiKey } = await newCustomer(admin, 'prop@example.com', '3', { rpm_limit: 100_000 }));
});

test.after.always(async () => {
  await bed?.stop();
  await db?.destroy();
});

interface Attempt {
  method: string;
  target: string;
  headers: Record<string, string>;
  body?: string;
}

const PATHS = [
  '/v1/models',
  `/v1/models/${encodeURIComponent(MODEL)}`,
  '/v1/chat/completions',
  '/v1/embeddings',
  '/v1/images/generations',
  '/v1/messages',
  '/v1/messages/count_tokens',
  '/v1/responses',
  '/v1/responses/resp_0123456789abcdef',
  '/admin/api/users',
  '/admin/api/users/1',
  '/admin/api/users/1/credit',
  '/admin/api/users/1/keys',
  '/admin/api/channels',
  '/admin/api/channels/1/tokens',
  '/admin/api/tokens/1',
  '/admin/api/keys/1',
  '/admin/api/redemption-codes',
  '/admin/api/usage',
  '/admin/api/models/x',
  '/admin/queues',
  '/metrics',
  '/healthz',
];

/** A path, possibly respelled the ways an attacker would. */
const pathArb = fc.tuple(fc.constantFrom(...PATHS), fc.nat(9), fc.string({ maxLength: 6 })).map(([path, how, junk]) => {
  switch (how) {
    case 0:
      return path.toUpperCase();
    case 1:
      return path.replace('/', '//');
    case 2:
      return path.replace(/[a-z]/, (c) => `%${c.charCodeAt(0).toString(16)}`);
    case 3:
      return `/.${path}`;
    case 4:
      return `${path};${encodeURIComponent(junk)}`;
    case 5:
      return `${path}/${encodeURIComponent(junk)}`;
    case 6:
      return `http://127.0.0.1${path}`;
    default:
      return path;
  }
});

const authArb = fc.constantFrom(
  () => ({}),
  () => ({ authorization: `Bearer ${apiKey}` }),
  () => ({ authorization: `Bearer ${apiKey}` }),
  () => ({ authorization: `Bearer ${bed.env.ADMIN_TOKEN}` }),
  () => ({ authorization: `Bearer ${apiKey}\u00a0` }),
  () => ({ authorization: `Bearer \u00a0${bed.env.ADMIN_TOKEN}` }),
  () => ({ authorization: 'Bearer ' }),
  () => ({ authorization: `Basic ${Buffer.from(`x:${bed.env.ADMIN_TOKEN}`).toString('base64')}` }),
  () => ({ authorization: 'Bearer sk-eastx-' + 'A'.repeat(43) }),
  () => ({ 'x-api-key': apiKey }),
  () => ({ 'x-api-key': `${apiKey}\u00a0` }),
  () => ({ 'x-api-key': bed.env.ADMIN_TOKEN }),
);

const nested = (depth: number) => `${'['.repeat(depth)}1${']'.repeat(depth)}`;
const messageArb = fc.record(
  {
    role: fc.constantFrom('user', 'system', 'assistant', 'tool', 'bogus', 7),
    content: fc.oneof(fc.string({ maxLength: 200 }), fc.constant(null), fc.array(fc.jsonValue({ maxDepth: 3 }), { maxLength: 3 })),
  },
  { requiredKeys: [] },
);
const chatArb = fc.record(
  {
    model: fc.constantFrom(MODEL, CLAUDE, 'prop/embed', 'nope', '', 42),
    messages: fc.oneof(fc.array(messageArb, { maxLength: 5 }), fc.jsonValue({ maxDepth: 2 })),
    stream: fc.oneof(fc.boolean(), fc.constant('yes')),
    max_tokens: fc.oneof(fc.integer({ min: -5, max: 100 }), fc.double(), fc.constant(1e300)),
    n: fc.integer({ min: -1, max: 10 }),
    input: fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.array(fc.integer(), { maxLength: 5 }),
      fc.array(fc.jsonValue({ maxDepth: 3 }), { maxLength: 4 }),
    ),
    // Messages and Responses fields
    system: fc.oneof(fc.string({ maxLength: 40 }), fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 })),
    tools: fc.array(fc.jsonValue({ maxDepth: 3 }), { maxLength: 3 }),
    thinking: fc.jsonValue({ maxDepth: 2 }),
    instructions: fc.jsonValue({ maxDepth: 1 }),
    previous_response_id: fc.oneof(fc.string({ maxLength: 30 }), fc.constant('resp_0123456789abcdef')),
    prompt: fc.string({ maxLength: 40 }),
    extra: fc.jsonValue({ maxDepth: 4 }),
  },
  { requiredKeys: [] },
);
const bodyArb = fc.oneof(
  chatArb.map((b) => JSON.stringify(b)),
  fc.jsonValue({ maxDepth: 6 }).map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 300 }),
  fc.integer({ min: 60, max: 5000 }).map((d) => `{"model":"${MODEL}","messages":[{"role":"user","content":"x"}],"x":${nested(d)}}`),
  fc.integer({ min: 60_000, max: 70_000 }).map((n) => `{"model":"${MODEL}","messages":[{"role":"user","content":"${'a'.repeat(n)}"}]}`),
  fc.constant(undefined),
);

const attemptArb: fc.Arbitrary<Attempt> = fc
  .record({
    method: fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'),
    target: pathArb,
    auth: authArb,
    contentType: fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded', ''),
    override: fc.option(fc.constantFrom('GET', 'DELETE', 'PUT')),
    body: bodyArb,
  })
  .map(({ method, target, auth, contentType, override, body }) => ({
    method,
    target,
    headers: {
      ...auth(),
      ...(contentType ? { 'content-type': contentType } : {}),
      ...(override ? { 'x-http-method-override': override } : {}),
    },
    body: method === 'GET' || method === 'HEAD' ? undefined : body,
  }));

function send(attempt: Attempt): Promise<{ status: number; text: string }> {
  const { port } = new URL(bed.url);
  return new Promise((resolve, reject) => {
    const headers = {
      ...attempt.headers,
      ...(attempt.body !== undefined ? { 'content-length': String(Buffer.byteLength(attempt.body)) } : {}),
    };
    const req = request({ host: '127.0.0.1', port, method: attempt.method, path: attempt.target, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.setTimeout(15_000, () => req.destroy(new Error('no answer within 15 s')));
    req.on('error', reject);
    req.end(attempt.body);
  });
}

async function ledgerState(): Promise<string> {
  const { rows } = await sql<{ n: number; total: string | null; held: string | null }>`
    SELECT (SELECT COUNT(*) FROM ledger) AS n, (SELECT SUM(amount_nano) FROM ledger) AS total, (SELECT SUM(held_nano) FROM users) AS held`.execute(
    db,
  );
  return JSON.stringify(rows[0]);
}

const ANTHROPIC_PATHS = new Set(['/v1/messages', '/v1/messages/count_tokens']);
const CONTRACT_STATUSES = new Set([200, 201, 400, 401, 402, 403, 404, 405, 413, 429, 502, 503, 504]);

test('random hostile requests get contract answers; refused ones reach neither the upstream nor the ledger', async (t) => {
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(attemptArb, async (attempt) => {
      runs++;
      const upstreamBefore = bed.mock.requests.length;
      const ledgerBefore = await ledgerState();
      const { status, text } = await send(attempt);
      const what = `${attempt.method} ${attempt.target} → ${status} ${text.slice(0, 160)}`;
      if (!CONTRACT_STATUSES.has(status)) throw new Error(`not a contract status: ${what}`);
      if (status >= 400 && attempt.method !== 'HEAD') {
        const body = JSON.parse(text) as {
          type?: string;
          error?: { code?: keyof typeof ERRORS; message?: string; type?: string; param?: unknown };
        };
        const error = body.error;
        if (!error?.code || ERRORS[error.code]?.status !== status || typeof error.message !== 'string') {
          throw new Error(`not a contract error body: ${what}`);
        }
        // SPEC §1b: Anthropic's shape on the Messages routes (as routed: any other spelling is an ordinary 404)
        if (ANTHROPIC_PATHS.has(attempt.target.split('?')[0])) {
          if (body.type !== 'error' || typeof error.type !== 'string') throw new Error(`not Anthropic's error shape: ${what}`);
        } else if (!('param' in error)) throw new Error(`not a SPEC §2 error body: ${what}`);
      }
      if (status >= 400 && status < 500) {
        if (bed.mock.requests.length !== upstreamBefore) throw new Error(`a refused request reached the upstream: ${what}`);
        if ((await ledgerState()) !== ledgerBefore) throw new Error(`a refused request changed the ledger: ${what}`);
      }
    }),
    { seed: SEED, numRuns: 5000, interruptAfterTimeLimit: 20_000, markInterruptAsFailure: false },
  );
  t.log(`${runs} random requests`);
  t.true(runs >= 100, `${runs} random requests`);
  t.is((await fetch(`${bed.url}/healthz`)).status, 200, 'the web process is healthy afterwards');
  const models = await fetch(`${bed.url}/v1/models`, { headers: { authorization: `Bearer ${apiKey}` } });
  t.is(models.status, 200);
  const audit = await auditLedger(db);
  t.deepEqual(audit.findings, [], 'the ledger audit passes');
});
