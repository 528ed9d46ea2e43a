import { log } from '../log.js';
import type { Redis, RedisKeys } from '../redis/index.js';
import type { SlotRequest } from './rpm.js';

/** A slot not renewed for this long is free again (its web process died); renewed every third of it. */
const LEASE_MS = 15_000;

/** One request's slot: `release` frees it (idempotent). */
export interface Slot {
  release(): void;
}

/**
 * Per-key `max_concurrent_requests` (SPEC §4), exact across every web process: each request in flight holds
 * a lease in one sorted set per key, taken in the same Lua call as its RPM count (src/limits/rpm.lua, so a
 * request refused for concurrency is never counted) and given back when the request ends, fails or its
 * client leaves. This process renews the leases of its own requests in one pipeline every LEASE_MS / 3, so a
 * slot of a process that died frees itself within LEASE_MS.
 */
export class ConcurrencyLimiter {
  private readonly redis: Redis;
  /** this process's slots: request id → the key's in-flight set */
  private readonly held = new Map<string, string>();
  private readonly renewal: NodeJS.Timeout;

  constructor(
    redis: Redis,
    private readonly keys: RedisKeys,
  ) {
    this.redis = redis;
    this.renewal = setInterval(() => this.renew(), LEASE_MS / 3);
    this.renewal.unref();
  }

  /** What the RPM count needs to take a slot of key `keyId`, with at most `max` in flight. */
  slotFor(keyId: number, max: number): SlotRequest {
    return { set: this.keys.inflight(keyId), max, leaseMs: LEASE_MS };
  }

  /** The slot the RPM count took for `requestId`: renewed from now on; `release` frees it. */
  adopt(slot: SlotRequest, requestId: string): Slot {
    const { set } = slot;
    this.held.set(requestId, set);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.held.delete(requestId);
        void this.redis.zrem(set, requestId).catch((err: Error) => {
          // the lease runs out by itself within LEASE_MS
          log.warn({ requestId, err: { message: err.message } }, 'could not free a concurrency slot at once');
        });
      },
    };
  }

  /**
   * Extends the leases of this process's requests still in flight, on Redis's clock like the Lua script
   * (ZADD XX: a slot freed meanwhile is not taken back).
   */
  private renew(): void {
    if (this.held.size === 0) return;
    const slots = [...this.held];
    void (async () => {
      const [seconds, micros] = await this.redis.time();
      const expiry = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000) + LEASE_MS;
      const pipeline = this.redis.pipeline();
      for (const [requestId, set] of slots) pipeline.zadd(set, 'XX', expiry, requestId).pexpire(set, LEASE_MS * 2);
      await pipeline.exec();
    })().catch(() => undefined);
  }

  stop(): void {
    clearInterval(this.renewal);
  }
}
