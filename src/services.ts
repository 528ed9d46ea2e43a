import { randomBytes } from 'node:crypto';
import { KeyStore } from './accounts/key-store.js';
import type { Config } from './config.js';
import { ConcurrencyLimiter } from './limits/concurrency.js';
import { RpmLimiter } from './limits/rpm.js';
import { ChannelQueues } from './queue/queues.js';
import { RelayHub } from './queue/web-relay.js';
import { type Connections, connect, disconnect } from './runtime.js';

/** Everything a web process shares between requests: connections and caches, no request state. */
export interface WebServices extends Connections {
  keyStore: KeyStore;
  rpm: RpmLimiter;
  concurrency: ConcurrencyLimiter;
  relay: RelayHub;
  jobs: ChannelQueues;
  /** Set on SIGTERM (src/web.ts): the process finishes what it has and exits. */
  stopping: boolean;
  close(): Promise<void>;
}

export async function createWebServices(config: Config): Promise<WebServices> {
  const connections = connect(config, 'web');
  const { db, redis, subscriber, queueConnection, keys } = connections;
  const relay = new RelayHub(subscriber, redis, keys, randomBytes(8).toString('hex'));
  await relay.start();
  const jobs = new ChannelQueues(queueConnection, config.redisPrefix);
  const concurrency = new ConcurrencyLimiter(redis, keys);
  return {
    ...connections,
    keyStore: new KeyStore(db, redis, keys),
    rpm: new RpmLimiter(redis, keys),
    concurrency,
    relay,
    jobs,
    stopping: false,
    async close() {
      concurrency.stop();
      relay.stop();
      await jobs.close();
      await disconnect(connections);
    },
  };
}
