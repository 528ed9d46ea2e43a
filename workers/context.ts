import type { Catalog, UpstreamToken } from '../src/catalog/catalog.js';
import type { Config } from '../src/config.js';
import type { Db } from '../src/db/index.js';
import type { Redis, RedisKeys } from '../src/redis/index.js';
import type { TokenPool } from '../src/upstream/pool.js';
import type { SecretBox } from '../src/upstream/secrets.js';

/** What job processors share inside one worker process. */
export interface WorkerContext {
  config: Config;
  db: Db;
  redis: Redis;
  keys: RedisKeys;
  catalog: Catalog;
  pool: TokenPool;
  secrets: SecretBox;
}

const opened = new Map<string, string>();

/** The plain secret of a token, decrypted once per sealed value and kept only in this process's memory. */
export function tokenSecret(ctx: WorkerContext, token: UpstreamToken): string {
  let plain = opened.get(token.secretEnc);
  if (plain === undefined) {
    plain = ctx.secrets.open(token.secretEnc);
    opened.set(token.secretEnc, plain);
  }
  return plain;
}
