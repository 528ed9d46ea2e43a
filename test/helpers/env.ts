import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { createConnection } from 'mysql2/promise';
import { type Config, loadConfig } from '../../src/config.js';
import { migrateToLatest } from '../../src/db/migrate.js';

export const MYSQL_SERVER = process.env.TEST_MYSQL_SERVER ?? 'mysql://root@127.0.0.1:3306';
export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
/** Set it to run two checkouts' suites side by side on one machine without sharing databases. */
const NAMESPACE = (process.env.EASTX_TEST_NAMESPACE ?? '').replace(/[^a-z0-9_]/gi, '_');

/**
 * A fresh database and Redis prefix of its own for one test file (ava runs files in parallel processes).
 * Both are named after `name` and emptied first (the database dropped and migrated anew), so every file starts
 * empty and a suite run leaves behind only its last run's data, for an audit or a post-mortem.
 */
export async function freshEnvironment(name: string): Promise<{ env: Record<string, string>; config: Config }> {
  const suffix = `${NAMESPACE ? `${NAMESPACE}_` : ''}${name.replace(/[^a-z0-9_]/gi, '_')}`;
  const database = `eastx_test_${suffix}`;
  const connection = await createConnection(MYSQL_SERVER);
  await connection.query(`DROP DATABASE IF EXISTS \`${database}\``);
  await connection.end();
  const queuePrefix = `eastx-test-${suffix}`;
  await emptyRedisPrefix(`{${queuePrefix}}`);
  const env = {
    NODE_ENV: 'test',
    DATABASE_URL: `${MYSQL_SERVER}/${database}`,
    REDIS_URL,
    QUEUE_PREFIX: queuePrefix,
    ADMIN_TOKEN: `admin-${randomBytes(8).toString('hex')}`,
    APP_SECRET: `secret-${randomBytes(16).toString('hex')}`,
    LOG_LEVEL: 'warn',
  };
  await migrateToLatest(env.DATABASE_URL);
  return { env, config: loadConfig(env) };
}

/** Unlinks every key whose name starts with `prefix` (which must hold no glob character: `*`, `?`, `[` or a backslash). */
export async function emptyRedisPrefix(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true });
  await redis.connect();
  try {
    for await (const keys of redis.scanStream({ match: `${prefix}*`, count: 1000 }) as AsyncIterable<string[]>) {
      if (keys.length > 0) await redis.unlink(...keys);
    }
  } finally {
    redis.disconnect();
  }
}
