import { setTimeout as sleep } from 'node:timers/promises';
import type { UpstreamToken } from '../catalog/catalog.js';
import { loadLua, type Redis, type RedisKeys } from '../redis/index.js';

const ACQUIRE = loadLua(import.meta.url, './acquire.lua');
const RENEW = loadLua(import.meta.url, './renew.lua');
const RELEASE = loadLua(import.meta.url, './release.lua');

export interface PoolOptions {
  /** A lease not renewed for this long is dropped (its holder died). */
  leaseMs: number;
  /** 5xx / connect failures in a row before a token cools down. */
  failuresBeforeCooldown: number;
  baseBackoffMs: number;
  maxBackoffMs: number;
  /** How often a job that found every token busy looks again. */
  busyPollMs: number;
}

export const DEFAULT_POOL_OPTIONS: PoolOptions = {
  leaseMs: 15_000,
  failuresBeforeCooldown: 3,
  baseBackoffMs: 1_000,
  maxBackoffMs: 60_000,
  busyPollMs: 15,
};

export type CallOutcome = 'ok' | 'fail' | 'ratelimited';

export interface Lease {
  token: UpstreamToken;
  /** Gives the lease back, recording the outcome; returns the cooldown applied in ms (0 = none). */
  release(outcome: CallOutcome, retryAfterMs?: number): Promise<number>;
}

export type Acquired = { kind: 'leased'; lease: Lease } | { kind: 'cooling'; retryAfterMs: number } | { kind: 'none' };

type PoolRedis = Redis & {
  eastxAcquire(numKeys: number, ...args: Array<string | number>): Promise<[number, number]>;
  eastxRenew(key: string, jobId: string, leaseMs: number): Promise<number>;
  eastxRelease(...args: Array<string | number>): Promise<number>;
};

/**
 * Per-token concurrency leases and cooldowns in Redis (SPEC §4), shared by every worker process:
 * one Lua call picks the least-loaded admissible token and leases it; renewals keep it while the call
 * runs; a holder that dies loses it after `leaseMs`.
 */
export class TokenPool {
  private readonly redis: PoolRedis;
  readonly options: PoolOptions;

  constructor(redis: Redis, private readonly keys: RedisKeys, options: Partial<PoolOptions> = {}) {
    this.options = { ...DEFAULT_POOL_OPTIONS, ...options };
    if (!('eastxAcquire' in redis)) {
      redis.defineCommand('eastxAcquire', { lua: ACQUIRE });
      redis.defineCommand('eastxRenew', { numberOfKeys: 1, lua: RENEW });
      redis.defineCommand('eastxRelease', { numberOfKeys: 4, lua: RELEASE });
    }
    this.redis = redis as PoolRedis;
  }

  /**
   * Leases one of `tokens` (active ones, minus `exclude`) for `jobId`, waiting while all are busy.
   * Answers `cooling` when every candidate is cooling down, `none` when there is no candidate at all.
   */
  async acquire(tokens: UpstreamToken[], jobId: string, signal: AbortSignal, exclude: ReadonlySet<number> = new Set()): Promise<Acquired> {
    const candidates = rotate(tokens.filter((t) => t.status === 'active' && !exclude.has(t.id)));
    if (candidates.length === 0) return { kind: 'none' };
    const keys = candidates.flatMap((t) => [this.keys.leases(t.id), this.keys.cooldown(t.id)]);
    const limits = candidates.map((t) => Math.max(1, t.maxConcurrency));
    for (;;) {
      signal.throwIfAborted();
      const [index, coolingMs] = await this.redis.eastxAcquire(keys.length, ...keys, jobId, this.options.leaseMs, ...limits);
      if (index > 0) return { kind: 'leased', lease: this.holdLease(candidates[index - 1], jobId) };
      if (index < 0) return { kind: 'cooling', retryAfterMs: coolingMs };
      await sleep(this.options.busyPollMs + Math.random() * this.options.busyPollMs, undefined, { signal }).catch(() => undefined);
    }
  }

  private holdLease(token: UpstreamToken, jobId: string): Lease {
    const leaseKey = this.keys.leases(token.id);
    const renewal = setInterval(() => {
      void this.redis.eastxRenew(leaseKey, jobId, this.options.leaseMs).catch(() => undefined);
    }, this.options.leaseMs / 3);
    renewal.unref();
    let released = false;
    return {
      token,
      release: async (outcome, retryAfterMs = 0) => {
        if (released) return 0;
        released = true;
        clearInterval(renewal);
        const o = this.options;
        return this.redis.eastxRelease(
          leaseKey, this.keys.failures(token.id), this.keys.cooldown(token.id), `${this.keys.cooldown(token.id)}:level`,
          jobId, outcome, Math.max(0, Math.round(retryAfterMs)), o.failuresBeforeCooldown, o.baseBackoffMs, o.maxBackoffMs,
        );
      },
    };
  }

  /** In-flight leases per token (for metrics and tests). */
  async inFlight(tokenId: number): Promise<number> {
    return this.redis.zcard(this.keys.leases(tokenId));
  }
}

/** A random rotation, so equally loaded tokens share the work instead of the first one taking it all. */
function rotate<T>(items: T[]): T[] {
  if (items.length < 2) return items;
  const start = Math.floor(Math.random() * items.length);
  return [...items.slice(start), ...items.slice(0, start)];
}
