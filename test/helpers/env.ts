import { randomBytes } from 'node:crypto';
import { createConnection } from 'mysql2/promise';
import { type Config, loadConfig } from '../../src/config.js';
import { migrateToLatest } from '../../src/db/migrate.js';

export const MYSQL_SERVER = process.env.TEST_MYSQL_SERVER ?? 'mysql://root@127.0.0.1:3306';
export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
/** Set it to run two checkouts' suites side by side on one machine without sharing databases. */
const NAMESPACE = (process.env.EASTX_TEST_NAMESPACE ?? '').replace(/[^a-z0-9_]/gi, '_');

/**
 * A fresh database and Redis prefix of its own for one test file (ava runs files in parallel processes).
 * The database is dropped and migrated anew, so every file starts empty.
 */
export async function freshEnvironment(name: string): Promise<{ env: Record<string, string>; config: Config }> {
  const database = `eastx_test_${NAMESPACE ? `${NAMESPACE}_` : ''}${name.replace(/[^a-z0-9_]/gi, '_')}`;
  const connection = await createConnection(MYSQL_SERVER);
  await connection.query(`DROP DATABASE IF EXISTS \`${database}\``);
  await connection.end();
  const env = {
    NODE_ENV: 'test',
    DATABASE_URL: `${MYSQL_SERVER}/${database}`,
    REDIS_URL,
    QUEUE_PREFIX: `eastx-test-${name}-${randomBytes(4).toString('hex')}`,
    ADMIN_TOKEN: `admin-${randomBytes(8).toString('hex')}`,
    APP_SECRET: `secret-${randomBytes(16).toString('hex')}`,
    LOG_LEVEL: 'warn',
  };
  await migrateToLatest(env.DATABASE_URL);
  return { env, config: loadConfig(env) };
}
