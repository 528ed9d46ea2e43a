import { setTimeout as sleep } from 'node:timers/promises';
import { Catalog } from './catalog/catalog.js';
import type { Config } from './config.js';
import { createDb, type Db, SERVICE_DB_OPTIONS } from './db/index.js';
import { log } from './log.js';
import { createRedis, REQUEST_PATH_OPTIONS, type Redis, RedisKeys, reportOutages } from './redis/index.js';
import { SecretBox } from './upstream/secrets.js';

/**
 * What a long-running process (web or worker) connects to, and how it stops: the same for both entries.
 * - `redis`: commands (auto-pipelined); on the web its commands fail within seconds while Redis is away,
 *   so a client gets 500 instead of a hang; a worker's ride out any outage
 * - `subscriber`: pub/sub only (the web's relay; a worker's cancels and catalog news)
 * - `queueConnection`: BullMQ's (no auto-pipelining: its blocking commands must not queue behind others)
 */
export interface Connections {
  config: Config;
  db: Db;
  redis: Redis;
  subscriber: Redis;
  queueConnection: Redis;
  keys: RedisKeys;
  catalog: Catalog;
  secrets: SecretBox;
}

export function connect(config: Config, role: 'web' | 'worker'): Connections {
  const requestPath = role === 'web' ? REQUEST_PATH_OPTIONS : {};
  const db = createDb(config.databaseUrl, 20, SERVICE_DB_OPTIONS);
  const redis = reportOutages(createRedis(config.redisUrl, requestPath), `${role} commands`);
  const subscriber = reportOutages(createRedis(config.redisUrl, { enableAutoPipelining: false }), `${role} subscriber`);
  const queueConnection = reportOutages(createRedis(config.redisUrl, { ...requestPath, enableAutoPipelining: false }), `${role} queue`);
  const keys = new RedisKeys(config.redisPrefix);
  return {
    config,
    db,
    redis,
    subscriber,
    queueConnection,
    keys,
    catalog: new Catalog(db, redis, keys),
    secrets: new SecretBox(config.appSecret),
  };
}

/** Whether `work` resolved within `ms` (its failure is the caller's); the wait does not keep the process alive. */
export const within = (work: Promise<unknown>, ms: number): Promise<boolean> =>
  Promise.race([work.then(() => true), sleep(ms, false, { ref: false })]);

/** Closes what `connect` opened; a Redis that does not answer is not waited for. */
export async function disconnect(c: Connections): Promise<void> {
  await Promise.all(
    [c.subscriber, c.redis, c.queueConnection].map((r) =>
      within(
        r.quit().catch(() => undefined),
        2_000,
      ).then(() => r.disconnect()),
    ),
  );
  await c.db.destroy();
}

/** How long a process may take to stop on SIGTERM (Heroku kills it 30 s after the signal). */
const STOP_DEADLINE_MS = 28_000;

/**
 * Runs `stop` once on the first SIGTERM or SIGINT, then exits; exits anyway when it takes longer than
 * Heroku allows (the process is killed then, and this way its logs say so).
 */
export function stopOnSignal(role: string, stop: (signal: string) => Promise<void>): void {
  let stopping = false;
  const onSignal = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, `${role} stopping`);
    setTimeout(() => {
      log.warn(`${role} did not stop in time; exiting`);
      process.exit(1);
    }, STOP_DEADLINE_MS).unref();
    stop(signal).then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err: { message: (err as Error).message } }, `${role} failed to stop cleanly`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
}

/** A process entry: runs `main`, and exits 1 with one log line if it fails to start. */
export function runProcess(role: string, main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    log.fatal({ err: { message: (err as Error).message } }, `${role} failed to start`);
    process.exit(1);
  });
}
