import { Kysely, MysqlDialect } from 'kysely';
import { createPool, type Pool, type PoolConnection } from 'mysql2';
import { createConnection } from 'mysql2/promise';
import { patientTimeout } from '../patient-timeout.js';
import type { Database } from './schema.js';

export type Db = Kysely<Database>;

function connectionOptions(databaseUrl: string) {
  const url = new URL(databaseUrl);
  return {
    host: url.hostname,
    port: Number(url.port || 3306),
    user: decodeURIComponent(url.username || 'root'),
    password: decodeURIComponent(url.password),
    database: url.pathname.replace(/^\//, '') || 'eastx',
  };
}

const pools = new WeakMap<Db, Pool>();

/**
 * The mysql2 pool behind a Kysely instance, for the two hot-path money statements that run as one
 * multi-statement round trip (src/billing). Everything else goes through Kysely.
 */
export function poolOf(db: Db): Pool {
  const pool = pools.get(db);
  if (!pool) throw new Error('not a database created by createDb');
  return pool;
}

type Query = (...args: unknown[]) => unknown;

/**
 * A query left unanswered for `timeoutMs` means the server, or the network to it, is gone (a partition
 * leaves connections open but silent): that connection is dropped and its query fails, and so go the
 * pool's idle connections, which share its fate; the next query opens a new connection (connectTimeout).
 * So callers answer instead of hanging. mysql2 has no such limit of its own. Time this process was too busy
 * to read the answer does not count (src/patient-timeout.ts): a settlement MariaDB answered during a burst
 * must not fail, since a failed settlement leaves its request unbilled.
 */
function guardAgainstSilence(pool: Pool, timeoutMs: number): void {
  const idle = new Set<PoolConnection>();
  pool.on('release', (connection) => idle.add(connection));
  pool.on('acquire', (connection) => idle.delete(connection));
  pool.on('connection', (connection) => {
    for (const gone of ['end', 'error'] as const) connection.once(gone, () => idle.delete(connection));
    const raw = connection as unknown as { query: Query; stream: { destroy(err: Error): void } };
    const query = raw.query.bind(connection);
    raw.query = (...args: unknown[]) => {
      const callback = args.at(-1);
      if (typeof callback !== 'function') return query(...args);
      let answered = false;
      const stop = patientTimeout(
        timeoutMs,
        () => answered,
        () => {
          for (const other of idle) other.destroy();
          idle.clear();
          connection.destroy(); // out of the pool
          raw.stream.destroy(new Error(`the database did not answer within ${timeoutMs} ms`)); // fails the query
        },
      );
      return query(...args.slice(0, -1), (...results: unknown[]) => {
        answered = true;
        stop();
        (callback as Query)(...results);
      });
    };
  });
}

export interface DbOptions {
  /** Drop a connection whose query is unanswered this long (0: never). */
  queryTimeoutMs?: number;
}

/**
 * The web and worker processes' pools: a request meets an unreachable MariaDB as an error within seconds.
 * Their queries take milliseconds; 5 s of silence is an outage, not a slow query.
 */
export const SERVICE_DB_OPTIONS: DbOptions = { queryTimeoutMs: 5_000 };

export function createDb(databaseUrl: string, poolSize = 10, options: DbOptions = {}): Db {
  const pool = createPool({
    ...connectionOptions(databaseUrl),
    connectionLimit: poolSize,
    // an unreachable server costs a request at most this long per connection attempt (mysql2's default: 10 s)
    connectTimeout: 3_000,
    // eastx sends every statement as text (kysely and our scripts use query(), never execute()); mysql2's
    // default cache of 16,000 prepared statements would preallocate 512 KB of JS heap per connection
    maxPreparedStatements: 1,
    supportBigNumbers: true,
    multipleStatements: true,
    timezone: 'Z',
    dateStrings: false,
  });
  if (options.queryTimeoutMs) guardAgainstSilence(pool, options.queryTimeoutMs);
  // READ COMMITTED: no gap locks, so holds and settlements of one account's concurrent requests
  // (which all touch the same users row) queue on that row instead of deadlocking on index gaps.
  pool.on('connection', (connection) => {
    connection.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED');
    connection.query("SET time_zone = '+00:00'");
  });
  const db = new Kysely<Database>({ dialect: new MysqlDialect({ pool }) });
  pools.set(db, pool);
  return db;
}

/**
 * Runs a multi-statement transaction script in one round trip on one connection. If a statement fails the
 * transaction is rolled back before the connection goes back to the pool. Returns each statement's result.
 * mysql2's callback API: its promise wrapper captures a stack trace per call, measurable on the request path.
 */
export async function runScript(db: Db, script: string, params: unknown[]): Promise<unknown[]> {
  const pool = poolOf(db);
  const connection = await new Promise<PoolConnection>((resolve, reject) =>
    pool.getConnection((err, got) => (err ? reject(err) : resolve(got))),
  );
  const query = (sql: string, values: unknown[] = []) =>
    new Promise<unknown>((resolve, reject) => connection.query(sql, values, (err, results) => (err ? reject(err) : resolve(results))));
  try {
    return (await query(script, params)) as unknown[];
  } catch (err) {
    await query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    connection.release();
  }
}

const RETRYABLE = new Set(['ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT']);

/** Runs a transaction again when InnoDB picked it as a deadlock victim (it was rolled back whole). */
export async function retryOnDeadlock<T>(work: () => Promise<T>, attempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (err) {
      if (attempt >= attempts || !RETRYABLE.has((err as { code?: string }).code ?? '')) throw err;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 5 * attempt));
    }
  }
}

/** Creates the database named in the URL if it does not exist (local runs and tests; Heroku add-ons provide one). */
export async function ensureDatabase(databaseUrl: string): Promise<void> {
  const { database, ...server } = connectionOptions(databaseUrl);
  if (!/^[A-Za-z0-9_$-]+$/.test(database)) throw new Error(`unsupported database name: ${database}`);
  const connection = await createConnection(server);
  try {
    await connection.query(`CREATE DATABASE IF NOT EXISTS \`${database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  } finally {
    await connection.end();
  }
}
