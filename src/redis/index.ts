import { readFileSync } from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';

export type { Redis };

/** One Redis connection. `rediss://` URLs get TLS from ioredis itself. */
export function createRedis(url: string, options: RedisOptions = {}): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, enableAutoPipelining: true, ...options });
}

/** Reads a `.lua` file that sits next to the calling module (copied into dist/ by the build). */
export function loadLua(moduleUrl: string, name: string): string {
  return readFileSync(new URL(name, moduleUrl), 'utf8');
}

/**
 * Every Redis key and channel of the app, under one prefix with a hash tag (`{eastx}`), so the layout
 * works on Redis Cluster unchanged. BullMQ queues use the same prefix.
 */
export class RedisKeys {
  constructor(readonly prefix: string) {}
  rpm = (keyId: number) => `${this.prefix}:rpm:${keyId}`;
  keyVersion = (keyHash: string) => `${this.prefix}:keyver:${keyHash}`;
  catalogVersion = () => `${this.prefix}:catalog:ver`;
  catalogChannel = () => `${this.prefix}:catalog`;
  leases = (tokenId: number) => `${this.prefix}:lease:${tokenId}`;
  cooldown = (tokenId: number) => `${this.prefix}:cooldown:${tokenId}`;
  /** how many cooldowns in a row a token had: its next backoff */
  cooldownLevel = (tokenId: number) => `${this.prefix}:cooldown-level:${tokenId}`;
  failures = (tokenId: number) => `${this.prefix}:failures:${tokenId}`;
  relay = (webId: string) => `${this.prefix}:relay:${webId}`;
  cancel = () => `${this.prefix}:cancel`;
  /** set when a client left, so a job still queued at that moment is cancelled when it starts */
  cancelled = (requestId: string) => `${this.prefix}:cancelled:${requestId}`;
  /** exists from a stream's first chunk to its end: a re-run must not start that stream over */
  streamStarted = (requestId: string) => `${this.prefix}:streamed:${requestId}`;
  /** a console session, by the SHA-256 of its id (src/console/sessions.ts) */
  session = (idHash: string) => `${this.prefix}:session:${idHash}`;
  /** a session's one-time message for its next page, sealed */
  flash = (idHash: string) => `${this.prefix}:flash:${idHash}`;
  /** key prefix of a console throttle (rate-limiter-flexible appends `:<key>`) */
  throttle = (name: string) => `${this.prefix}:throttle:${name}`;
}
