import type { Behavior, MockUpstream } from '../../src/mock/upstream.js';
import { createRedis, type Redis, RedisKeys } from '../../src/redis/index.js';
import { TokenPool } from '../../src/upstream/pool.js';
import { type AdminClient, mockChannel } from './admin.js';
import { startBed } from './bed.js';
import type { Gateway } from './gateway.js';
import { until } from './wait.js';

/**
 * A gateway (real web and worker processes, the admin API on the first web) on the mock upstream, a customer
 * with 20 USD and a key, and a new channel and model per behaviour asked for: for tests that stop or kill
 * the gateway's processes and then look at the ledger, the holds and the leases.
 */
export interface MockBed {
  mock: MockUpstream;
  gateway: Gateway;
  admin: AdminClient;
  redis: Redis;
  keys: RedisKeys;
  pool: TokenPool;
  userId: number;
  keyId: number;
  apiKey: string;
  /** A channel of its own whose one token behaves as `behavior`, and a model on it. */
  channelWith(behavior: Partial<Behavior>): ReturnType<typeof mockChannel>;
  /** The key's ledger rows of one request. */
  rowsFor(requestId: string): Promise<Array<Record<string, unknown>>>;
  /** The customer's held USD once it came back to '0', or as it last read when the wait ran out. */
  heldOnceSettled(): Promise<string>;
  stop(): Promise<void>;
}

export async function startMockBed(name: string, counts: { webs: number; workers: number }): Promise<MockBed> {
  const bed = await startBed(name, counts);
  const { mock, gateway, admin, config } = bed;
  const redis = createRedis(bed.env.REDIS_URL);
  const keys = new RedisKeys(config.redisPrefix);
  const userId = (await admin.user(`${name}@example.com`, '20')).id;
  const key = await admin.key(userId, { rpm_limit: 1000 });
  let channels = 0;
  return {
    mock,
    gateway,
    admin,
    redis,
    keys,
    pool: new TokenPool(redis, keys),
    userId,
    keyId: key.id,
    apiKey: key.key,
    channelWith: (behavior) => mockChannel(admin, mock, `${name}-${++channels}`, behavior),
    rowsFor: async (requestId) => (await admin.usage(`key_id=${key.id}`)).data.filter((r) => r.request_id === requestId),
    heldOnceSettled: () =>
      until(
        async () => (await admin.getUser(userId)).held_usd,
        (held) => held === '0',
      ),
    async stop() {
      await bed.stop();
      redis.disconnect();
    },
  };
}
