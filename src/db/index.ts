import { Kysely, MysqlDialect } from 'kysely';
import { createPool, type Pool } from 'mysql2';
import { createConnection } from 'mysql2/promise';
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

export function createDb(databaseUrl: string, poolSize = 10): Db {
  const pool = createPool({
    ...connectionOptions(databaseUrl),
    connectionLimit: poolSize,
    supportBigNumbers: true,
    multipleStatements: true,
    timezone: 'Z',
    dateStrings: false,
  });
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
 */
export async function runScript(db: Db, script: string, params: unknown[]): Promise<unknown[]> {
  const connection = await poolOf(db).promise().getConnection();
  try {
    const [results] = await connection.query(script, params);
    return results as unknown as unknown[];
  } catch (err) {
    await connection.query('ROLLBACK').catch(() => undefined);
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
