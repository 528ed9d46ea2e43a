/**
 * npm run bench:usage — how fast the console's /usage (and /recharge) answer for one account with
 * 1,000,000 ledger rows. Writes the rows with MariaDB's sequence engine (90 days, 5 models), sums them into
 * usage_daily with the migration's own backfill statement, then times the pages over HTTP through a real web
 * process with a logged-in session, next to the query /usage would need without the rollup.
 * BENCH_ROWS (default 1000000), BENCH_REPEAT (default 20).
 */
import { performance } from 'node:perf_hooks';
import { sql } from 'kysely';
import { createDb } from '../src/db/index.js';
import { AdminClient } from './helpers/admin.js';
import { ConsoleClient } from './helpers/console-client.js';
import { freshEnvironment } from './helpers/env.js';
import { startGateway } from './helpers/gateway.js';

const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000);
const REPEAT = Number(process.env.BENCH_REPEAT ?? 20);
const PASSWORD = 'bench-usage-password';
const isoDay = (msAgo: number) => new Date(Date.now() - msAgo).toISOString().slice(0, 10);

function summary(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return `median ${at(0.5).toFixed(1)} ms, p95 ${at(0.95).toFixed(1)} ms, max ${sorted[sorted.length - 1].toFixed(1)} ms`;
}

async function timed(label: string, work: () => Promise<unknown>, repeat = REPEAT): Promise<void> {
  await work(); // warm
  const samples: number[] = [];
  for (let i = 0; i < repeat; i++) {
    const started = performance.now();
    await work();
    samples.push(performance.now() - started);
  }
  console.log(`  ${label.padEnd(46)} ${summary(samples)}`);
}

async function main() {
  const { env } = await freshEnvironment('bench_usage');
  const db = createDb(env.DATABASE_URL, 2);
  const gateway = await startGateway(env, { workers: 0 });
  const base = gateway.urls[0];
  try {
    const admin = new AdminClient(base, env.ADMIN_TOKEN);
    const user = await admin.call<{ id: number }>('POST', '/admin/api/users', { email: 'heavy@example.com', password: PASSWORD });

    let started = performance.now();
    await sql`
      INSERT INTO ledger (request_id, user_id, key_id, kind, model, prompt_tokens, completion_tokens, images, amount_nano, estimated, created_at)
      SELECT CONCAT('bench-', seq), ${user.id}, 1, 'charge', ELT(1 + seq % 5, 'gpt-4o-mini', 'claude-sonnet-4-6', 'qwen/qwen-plus', 'text-embedding-3-small', 'wanx-v1'),
             100 + seq % 900, 50 + seq % 400, 0, -(1000 + seq % 5000), 0, NOW(3) - INTERVAL ((seq * 7) % 7776000) SECOND
      FROM ${sql.raw(`seq_1_to_${ROWS}`)}`.execute(db);
    console.log(
      `ledger: ${ROWS} charges over 90 days for user ${user.id} written in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );

    started = performance.now();
    await sql`
      INSERT INTO usage_daily (user_id, day, model, requests, prompt_tokens, completion_tokens, images, spent_nano)
      SELECT user_id, DATE(created_at), COALESCE(model, ''), COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(images), -SUM(amount_nano)
      FROM ledger WHERE kind = 'charge' GROUP BY user_id, DATE(created_at), COALESCE(model, '')`.execute(db);
    const rollupRows = await db
      .selectFrom('usage_daily')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    console.log(
      `usage_daily: the migration's backfill summed them into ${rollupRows.n} rows in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );

    const plan = await sql<
      Record<string, unknown>
    >`EXPLAIN SELECT model, requests, spent_nano FROM usage_daily WHERE user_id = ${user.id} AND day >= ${isoDay(29 * 86_400_000)} AND day <= ${isoDay(0)}`.execute(
      db,
    );
    console.log(`plan of the /usage query: ${plan.rows.map((r) => `type=${r.type} key=${r.key} rows=${r.rows}`).join('; ')}`);

    const client = new ConsoleClient(base);
    const login = await client.logIn('heavy@example.com', PASSWORD);
    if (login.status !== 303) throw new Error(`log-in failed: ${login.status}`);
    const page = async (path: string) => {
      const { res, text } = await client.get(path);
      if (res.status !== 200) throw new Error(`${path}: ${res.status} ${text.slice(0, 200)}`);
    };
    const middle = await db
      .selectFrom('ledger')
      .select('id')
      .where('user_id', '=', user.id)
      .orderBy('id')
      .offset(Math.floor(ROWS / 2))
      .limit(1)
      .executeTakeFirstOrThrow();

    console.log(`\nHTTP through one web process, logged in, ${REPEAT} sequential requests each (after one warm-up):`);
    await timed('GET /usage (default: last 30 days)', () => page('/usage'));
    await timed('GET /usage?from=…&to=… (90 days)', () => page(`/usage?from=${isoDay(89 * 86_400_000)}&to=${isoDay(0)}`));
    await timed('GET /usage?from=…&to=… (366 days)', () => page(`/usage?from=${isoDay(365 * 86_400_000)}&to=${isoDay(0)}`));
    await timed('GET /usage.csv (90 days)', () => page(`/usage.csv?from=${isoDay(89 * 86_400_000)}&to=${isoDay(0)}`));
    await timed('GET /recharge (newest ledger page)', () => page('/recharge'));
    await timed('GET /recharge?before=<middle id> (deep page)', () => page(`/recharge?before=${middle.id}`));

    console.log('\nFor comparison, the same 30-day report straight from the ledger (what the rollup avoids):');
    const since = new Date(Date.now() - 29 * 86_400_000);
    await timed(
      'SELECT … FROM ledger GROUP BY day, model',
      () =>
        sql`SELECT DATE(created_at) AS day, model, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), -SUM(amount_nano)
          FROM ledger WHERE user_id = ${user.id} AND kind = 'charge' AND created_at >= ${since} GROUP BY day, model`.execute(db),
      5,
    );
  } finally {
    await gateway.stop();
    await db.destroy();
  }
}

main().catch((err) => {
  console.error('bench:usage failed:', err);
  process.exit(1);
});
