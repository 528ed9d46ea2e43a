import test from 'ava';
import { Redis } from 'ioredis';
import { freshEnvironment, REDIS_URL } from './helpers/env.js';

// Every test file's Redis prefix is named after the file and emptied when the file starts, as its database
// is dropped: a suite run leaves only its last run's keys behind, not a new random prefix each time.

const redis = new Redis(REDIS_URL);
test.after.always(() => redis.disconnect());

async function keysUnder(prefix: string): Promise<string[]> {
  const found: string[] = [];
  for await (const keys of redis.scanStream({ match: `${prefix}*`, count: 1000 }) as AsyncIterable<string[]>) {
    found.push(...keys);
  }
  return found;
}

test('a fresh environment empties its own Redis prefix, every key of it, and no other', async (t) => {
  const { env, config } = await freshEnvironment('test_environment');
  t.is(config.redisPrefix, `{${env.QUEUE_PREFIX}}`);
  const own = config.redisPrefix;
  // a prefix that starts with this one's text, as `name_more` would for `name`: not this file's
  const sibling = `{${env.QUEUE_PREFIX}_more}`;

  const writes = redis.pipeline();
  for (let i = 0; i < 2500; i++) writes.set(`${own}:left:${i}`, 'x');
  writes.hset(`${own}:queue:meta`, 'a', '1');
  writes.set(`${sibling}:kept`, 'x');
  await writes.exec();
  t.teardown(() => redis.unlink(`${sibling}:kept`).then(() => undefined));
  t.is((await keysUnder(own)).length, 2501);

  const again = await freshEnvironment('test_environment');
  t.is(again.config.redisPrefix, own);
  t.deepEqual(await keysUnder(own), []);
  t.is(await redis.get(`${sibling}:kept`), 'x');
});
