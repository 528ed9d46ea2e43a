import test from 'ava';
import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs, QueryResult, RootOperationNode, UnknownRow } from 'kysely';
import { KeyStore } from '../src/accounts/key-store.js';
import { createDb, type Db } from '../src/db/index.js';
import { createRedis, type Redis, RedisKeys } from '../src/redis/index.js';
import { fundedKey } from './helpers/db-customer.js';
import { freshEnvironment } from './helpers/env.js';

/** Counts the SELECT statements kysely sends through it. */
class SelectCounter implements KyselyPlugin {
  selects = 0;
  transformQuery({ node }: PluginTransformQueryArgs): RootOperationNode {
    if (node.kind === 'SelectQueryNode') this.selects++;
    return node;
  }
  async transformResult({ result }: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return result;
  }
}

let db: Db;
let redis: Redis;
let keys: RedisKeys;

test.before(async () => {
  const { config } = await freshEnvironment('key_store');
  db = createDb(config.databaseUrl, 5);
  redis = createRedis(config.redisUrl);
  keys = new RedisKeys(config.redisPrefix);
});

test.after.always(async () => {
  await db?.destroy();
  redis?.disconnect();
});

test('requests meeting a changed key at once share one MySQL read, and each sees the change', async (t) => {
  const keyHash = 'key-store-burst@example.test';
  const { keyId } = await fundedKey(db, keyHash, 1_000_000n);
  const counter = new SelectCounter();
  const store = new KeyStore(db.withPlugin(counter), redis, keys);
  const burst = () => Promise.all(Array.from({ length: 50 }, () => store.lookup(keyHash)));

  await KeyStore.changed(redis, keys, keyHash);
  const first = await burst();
  t.is(counter.selects, 1, 'one read for 50 requests meeting a key new to the process');
  t.true(first.every(({ key }) => key?.id === keyId && key.rpmLimit === 60));

  await burst();
  t.is(counter.selects, 1, 'no read while the version is unchanged');

  for (const rpmLimit of [7, 8]) {
    await db.updateTable('api_keys').set({ rpm_limit: rpmLimit }).where('id', '=', keyId).execute();
    await KeyStore.changed(redis, keys, keyHash);
    const after = await burst();
    t.true(
      after.every(({ key }) => key?.rpmLimit === rpmLimit),
      `every request sees rpm_limit ${rpmLimit}`,
    );
  }
  t.is(counter.selects, 3, 'one more read per change');
});

test('a read that failed is not shared with the requests after it', async (t) => {
  const keyHash = 'key-store-failure@example.test';
  const { keyId } = await fundedKey(db, keyHash, 1_000_000n);
  await KeyStore.changed(redis, keys, keyHash);
  let failNext = true;
  const failing: KyselyPlugin = {
    transformQuery: ({ node }) => {
      if (failNext) throw new Error('MySQL unreachable');
      return node;
    },
    transformResult: async ({ result }) => result,
  };
  const store = new KeyStore(db.withPlugin(failing), redis, keys);
  const failed = await Promise.allSettled(Array.from({ length: 5 }, () => store.lookup(keyHash)));
  t.true(failed.every(({ status }) => status === 'rejected'));
  failNext = false;
  t.is((await store.lookup(keyHash)).key?.id, keyId);
});
