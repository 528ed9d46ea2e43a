import { setTimeout as sleep } from 'node:timers/promises';
import type { UpstreamToken } from '../catalog/catalog.js';
import { loadLua, type Redis, type RedisKeys } from '../redis/index.js';

const ACQUIRE = loadLua(import.meta.url, './acquire.lua');
const RENEW = loadLua(import.meta.url, './renew.lua');
const RELEASE = loadLua(import.meta.url, './release.lua');

export interface PoolOptions {
  /** A lease not renewed for this long is dropped (its holder died); renewed every third of it. */
  leaseMs: number;
  /** 5xx / connect failures in a row before a token cools down. */
  failuresBeforeCooldown: number;
  baseBackoffMs: number;
  maxBackoffMs: number;
  /** How often a job that found every token busy looks again (first, and at most). */
  busyPollMs: number;
  maxBusyPollMs: number;
}

export const DEFAULT_POOL_OPTIONS: PoolOptions = {
  leaseMs: 15_000,
  failuresBeforeCooldown: 3,
  baseBackoffMs: 1_000,
  maxBackoffMs: 60_000,
  busyPollMs: 10,
  maxBusyPollMs: 50,
};

/** What a call says about its token: `neutral` (cancelled, timed out, our own bug) changes nothing. */
export type CallOutcome = 'ok' | 'fail' | 'ratelimited' | 'neutral';

export interface Lease {
  token: UpstreamToken;
  /** Gives the lease back, recording the outcome; returns the cooldown applied in ms (0 = none). */
  release(outcome: CallOutcome, retryAfterMs?: number): Promise<number>;
}

export type Acquired = { kind: 'leased'; lease: Lease } | { kind: 'cooling'; retryAfterMs: number } | { kind: 'none' };

/** The channel as a whole: `usable` when some active token is not cooling down. */
export interface Availability {
  usable: boolean;
  /** ms until the first cooling token is back; undefined when no token is cooling (all disabled). */
  retryAfterMs?: number;
}

type PoolRedis = Redis & {
  eastxAcquire(numKeys: number, ...args: Array<string | number>): Promise<[number, number]>;
  eastxRenew(key: string, jobId: string, leaseMs: number): Promise<number>;
  eastxRelease(...args: Array<string | number>): Promise<number>;
};

const isActive = (t: UpstreamToken) => t.status === 'active';

/**
 * Per-token concurrency leases and cooldowns in Redis (SPEC §4), shared by every worker process:
 * one Lua call picks the least-loaded admissible token and leases it; renewals keep it while the call
 * runs; a holder that dies loses it after `leaseMs`.
 */
export class TokenPool {
  private readonly redis: PoolRedis;
  readonly options: PoolOptions;

  constructor(
    redis: Redis,
    private readonly keys: RedisKeys,
    options: Partial<PoolOptions> = {},
  ) {
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
   * Throws the signal's reason when it aborts while waiting.
   */
  async acquire(tokens: UpstreamToken[], jobId: string, signal: AbortSignal, exclude: ReadonlySet<number> = new Set()): Promise<Acquired> {
    const candidates = rotate(tokens.filter((t) => isActive(t) && !exclude.has(t.id)));
    if (candidates.length === 0) return { kind: 'none' };
    const keys = candidates.flatMap((t) => [this.keys.leases(t.id), this.keys.cooldown(t.id)]);
    const limits = candidates.map((t) => Math.max(1, t.maxConcurrency));
    let pollMs = this.options.busyPollMs;
    for (;;) {
      signal.throwIfAborted();
      const [index, coolingMs] = await this.redis.eastxAcquire(keys.length, ...keys, jobId, this.options.leaseMs, ...limits);
      if (index > 0) return { kind: 'leased', lease: this.holdLease(candidates[index - 1], jobId) };
      if (index < 0) return { kind: 'cooling', retryAfterMs: coolingMs };
      await sleep(pollMs / 2 + Math.random() * pollMs, undefined, { signal }).catch(() => undefined);
      pollMs = Math.min(this.options.maxBusyPollMs, pollMs * 1.5);
    }
  }

  /** Whether any active token of the channel is out of cooldown, and when the first cooling one is back. */
  async availability(tokens: UpstreamToken[]): Promise<Availability> {
    const active = tokens.filter(isActive);
    const ttls = await Promise.all(active.map((t) => this.redis.pttl(this.keys.cooldown(t.id))));
    const cooling = ttls.filter((ms) => ms > 0);
    return {
      usable: cooling.length < active.length,
      retryAfterMs: cooling.length > 0 ? Math.min(...cooling) : undefined,
    };
  }

  /** Drops whatever leases `jobId` still holds (a re-run job taking over from a dead worker). */
  async forget(tokens: UpstreamToken[], jobId: string): Promise<void> {
    await Promise.all(tokens.map((t) => this.redis.zrem(this.keys.leases(t.id), jobId)));
  }

  /** Leases on a token that have not expired (for metrics and tests). */
  async liveLeases(tokenId: number): Promise<number> {
    const [seconds, micros] = await this.redis.time();
    const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    return this.redis.zcount(this.keys.leases(tokenId), now + 1, '+inf');
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
          leaseKey,
          this.keys.failures(token.id),
          this.keys.cooldown(token.id),
          this.keys.cooldownLevel(token.id),
          jobId,
          outcome,
          Math.max(0, Math.round(retryAfterMs)),
          o.failuresBeforeCooldown,
          o.baseBackoffMs,
          o.maxBackoffMs,
        );
      },
    };
  }
}

/** A random rotation, so equally loaded tokens share the work instead of the first one taking it all. */
function rotate<T>(items: T[]): T[] {
  if (items.length < 2) return items;
  const start = Math.floor(Math.random() * items.length);
  return [...items.slice(start), ...items.slice(0, start)];
}
