import { Kysely, MysqlDialect } from 'kysely';
import { createPool } from 'mysql2';
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

export function databaseName(databaseUrl: string): string {
  return connectionOptions(databaseUrl).database;
}

export function createDb(databaseUrl: string, poolSize = 10): Db {
  const pool = createPool({
    ...connectionOptions(databaseUrl),
    connectionLimit: poolSize,
    supportBigNumbers: true,
    timezone: 'Z',
    dateStrings: false,
  });
  return new Kysely<Database>({ dialect: new MysqlDialect({ pool }) });
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
