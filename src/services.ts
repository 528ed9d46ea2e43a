import { randomBytes } from 'node:crypto';
import { KeyStore } from './accounts/key-store.js';
import { Catalog } from './catalog/catalog.js';
import type { Config } from './config.js';
import { createDb, SERVICE_DB_OPTIONS, type Db } from './db/index.js';
import { RpmLimiter } from './limits/rpm.js';
import { JobProducer } from './queue/producer.js';
import { RelayHub } from './queue/relay.js';
import { createRedis, RedisKeys, reportOutages, REQUEST_PATH_OPTIONS, type Redis } from './redis/index.js';
import { SecretBox } from './upstream/secrets.js';

/** Everything a web process shares between requests: connections and caches, no request state. */
export interface WebServices {
  config: Config;
  db: Db;
  redis: Redis;
  keys: RedisKeys;
  catalog: Catalog;
  keyStore: KeyStore;
  rpm: RpmLimiter;
  relay: RelayHub;
  jobs: JobProducer;
  secrets: SecretBox;
  close(): Promise<void>;
}

export async function createWebServices(config: Config): Promise<WebServices> {
  const db = createDb(config.databaseUrl, 20, SERVICE_DB_OPTIONS);
  // Request-path commands fail within seconds while Redis is away, so a client gets an error answer rather
  // than a hang (workers keep BullMQ's retry-forever).
  const redis = reportOutages(createRedis(config.redisUrl, REQUEST_PATH_OPTIONS), 'requests');
  const subscriber = reportOutages(createRedis(config.redisUrl, { enableAutoPipelining: false }), 'relay');
  const queueConnection = reportOutages(createRedis(config.redisUrl, { ...REQUEST_PATH_OPTIONS, enableAutoPipelining: false }), 'queue');
  const keys = new RedisKeys(config.redisPrefix);
  const relay = new RelayHub(subscriber, redis, keys, randomBytes(8).toString('hex'));
  await relay.start();
  const jobs = new JobProducer(queueConnection, config.redisPrefix);
  return {
    config,
    db,
    redis,
    keys,
    catalog: new Catalog(db, redis, keys),
    keyStore: new KeyStore(db, redis, keys),
    rpm: new RpmLimiter(redis, keys),
    relay,
    jobs,
    secrets: new SecretBox(config.appSecret),
    async close() {
      await jobs.close();
      await Promise.all([subscriber.quit(), redis.quit(), queueConnection.quit()].map((p) => p.catch(() => undefined)));
      await db.destroy();
    },
  };
}
