import { setTimeout as sleep } from 'node:timers/promises';
import type { UpstreamToken } from '../catalog/catalog.js';
import { log } from '../log.js';
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
  /**
   * The longest cooldown taken from an upstream's Retry-After. Longer ones (a bogus header, a quota reset days
   * away) would take the token out for that long: past it, one real call finds out whether it is back.
   */
  maxRetryAfterMs: number;
  /** How often a job that found every token busy looks again (first, and at most). */
  busyPollMs: number;
  maxBusyPollMs: number;
  /** Failed calls in a row (across its tokens) that make a channel unhealthy (CHANNEL_UNHEALTHY_AFTER). */
  unhealthyAfter: number;
}

export const DEFAULT_POOL_OPTIONS: PoolOptions = {
  leaseMs: 15_000,
  failuresBeforeCooldown: 3,
  baseBackoffMs: 1_000,
  maxBackoffMs: 60_000,
  maxRetryAfterMs: 3_600_000,
  busyPollMs: 10,
  maxBusyPollMs: 50,
  unhealthyAfter: 5,
};

/** What a call says about its token: `neutral` (cancelled, timed out, our own bug) changes nothing. */
export type CallOutcome = 'ok' | 'fail' | 'ratelimited' | 'neutral';

export interface Lease {
  token: UpstreamToken;
  /**
   * Aborts when the lease was lost and the token is full: its holder stalled past `leaseMs` (the pool took it
   * for dead) and others took the token meanwhile. The call must stop (see renew.lua).
   */
  lost: AbortSignal;
  /**
   * Gives the lease back, recording the outcome for the token's cooldowns and its channel's health (`what`
   * went wrong, for a `fail` or `ratelimited` outcome: shown to operators, never a secret); returns the
   * cooldown applied in ms (0 = none).
   */
  release(outcome: CallOutcome, retryAfterMs?: number, what?: string): Promise<number>;
}

export type Acquired = { kind: 'leased'; lease: Lease } | { kind: 'cooling'; retryAfterMs: number } | { kind: 'none' };

/** One route of a job as the pool sees it: its channel's tokens that may still be tried. */
export interface RouteCandidate {
  channelId: number;
  /** Routes of one priority share a tier; lower tiers are tried first. Candidates come sorted by tier. */
  tier: number;
  /** Within a tier, the lowest rank with a free token wins: 0 the job's home route, 1 not failed yet, 2 failed. */
  rank: number;
  weight: number;
  /** Active tokens not tried yet. */
  tokens: UpstreamToken[];
}

/** `route`: the index of the leased route among the candidates of the attempt that leased, `candidate` that route. */
export type RouteAcquired<R extends RouteCandidate = RouteCandidate> =
  | { kind: 'leased'; lease: Lease; route: number; candidate: R }
  | { kind: 'cooling'; retryAfterMs: number }
  | { kind: 'none' };

/** The channel as a whole: `usable` when some active token is not cooling down. */
export interface Availability {
  usable: boolean;
  /** ms until the first cooling token is back; undefined when no token is cooling (all disabled). */
  retryAfterMs?: number;
}

type PoolRedis = Redis & {
  eastxAcquire(numKeys: number, ...args: Array<string | number>): Promise<[number, number, number]>;
  eastxRenew(key: string, jobId: string, leaseMs: number, limit: number): Promise<number>;
  eastxRelease(...args: Array<string | number>): Promise<[number, number]>;
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

  /**
   * `limitNow`: a token's max_concurrency as the catalog says now (a worker's follows announced versions), for
   * a renewal that finds its lease gone: a limit lowered while the holder stalled is the one it must fit in.
   */
  constructor(
    redis: Redis,
    private readonly keys: RedisKeys,
    options: Partial<PoolOptions> = {},
    private readonly limitNow: (token: UpstreamToken) => number = (token) => token.maxConcurrency,
  ) {
    this.options = { ...DEFAULT_POOL_OPTIONS, ...options };
    if (!('eastxAcquire' in redis)) {
      redis.defineCommand('eastxAcquire', { lua: ACQUIRE });
      redis.defineCommand('eastxRenew', { numberOfKeys: 1, lua: RENEW });
      redis.defineCommand('eastxRelease', { numberOfKeys: 5, lua: RELEASE });
    }
    this.redis = redis as PoolRedis;
  }

  /**
   * Leases one of `tokens` (active ones, minus `exclude`: one channel, one route) for `jobId`, waiting while
   * all are busy. Answers `cooling` when every candidate is cooling down, `none` when there is no candidate.
   * Throws the signal's reason when it aborts while waiting.
   */
  async acquire(tokens: UpstreamToken[], jobId: string, signal: AbortSignal, exclude: ReadonlySet<number> = new Set()): Promise<Acquired> {
    const candidates = tokens.filter((t) => isActive(t) && !exclude.has(t.id));
    const route = { channelId: candidates[0]?.channelId ?? 0, tier: 0, rank: 1, weight: 1, tokens: candidates };
    const acquired = await this.acquireRoute([route], jobId, signal);
    return acquired.kind === 'leased' ? { kind: 'leased', lease: acquired.lease } : acquired;
  }

  /**
   * Leases a token for `jobId` among a model's routes (src/upstream/acquire.lua says how it picks), waiting
   * while the tier it settles on is busy. `routes` may be a function: it is asked again before every
   * attempt, so a job that waits leases by the catalog as it is then (a token disabled meanwhile is never
   * leased, a lowered limit holds for the next lease). Answers `cooling` when no route has a token to offer
   * and some token is cooling down (`retryAfterMs`: the soonest return), `none` when none is cooling either
   * (every token disabled or already tried). Throws the signal's reason when it aborts while waiting.
   */
  async acquireRoute<R extends RouteCandidate>(
    routes: R[] | (() => Promise<R[]>),
    jobId: string,
    signal: AbortSignal,
  ): Promise<RouteAcquired<R>> {
    const routesNow = typeof routes === 'function' ? routes : async () => routes;
    let pollMs = this.options.busyPollMs;
    for (;;) {
      signal.throwIfAborted();
      const acquired = await this.tryAcquireRoute(await routesNow(), jobId);
      if (acquired.kind !== 'busy') return acquired;
      await sleep(pollMs / 2 + Math.random() * pollMs, undefined, { signal }).catch(() => undefined);
      pollMs = Math.min(this.options.maxBusyPollMs, pollMs * 1.5);
    }
  }

  /** One attempt of acquireRoute: a lease, or `busy` when the tier it settles on has no free token yet. */
  private async tryAcquireRoute<R extends RouteCandidate>(routes: R[], jobId: string): Promise<RouteAcquired<R> | { kind: 'busy' }> {
    const live = routes.map((r) => ({ ...r, tokens: rotate(r.tokens) }));
    if (live.every((r) => r.tokens.length === 0)) return { kind: 'none' };
    const keys = live.flatMap((r) => [
      this.keys.channelHealth(r.channelId),
      ...r.tokens.flatMap((t) => [this.keys.leases(t.id), this.keys.cooldown(t.id)]),
    ]);
    const shape = live.flatMap((r) => [r.tier, r.rank, Math.max(0, Math.round(r.weight)), r.tokens.length]);
    const limits = live.flatMap((r) => r.tokens.map((t) => Math.max(1, t.maxConcurrency)));
    // {r, i, 0} leased token i of route r; {0, 0, 0} busy; {-1, ms until the first cooling token is back, _}
    const [route, second] = await this.redis.eastxAcquire(
      keys.length,
      ...keys,
      jobId,
      this.options.leaseMs,
      Math.random(),
      live.length,
      ...shape,
      ...limits,
    );
    if (route > 0) {
      const lease = this.holdLease(live[route - 1].tokens[second - 1], jobId);
      return { kind: 'leased', lease, route: route - 1, candidate: routes[route - 1] };
    }
    if (route < 0) return second > 0 ? { kind: 'cooling', retryAfterMs: second } : { kind: 'none' };
    return { kind: 'busy' };
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
    const lost = new AbortController();
    // A renewal that finds its lease gone (this process stalled past leaseMs) counts the call again while the
    // token has room. When others filled it meanwhile, the call is stopped instead: counting it would only make
    // new leases wait, while the upstream kept seeing more calls than max_concurrency for as long as it lasts.
    const renew = async () => {
      const held = await this.redis.eastxRenew(leaseKey, jobId, this.options.leaseMs, Math.max(1, this.limitNow(token)));
      if (held || lost.signal.aborted) return;
      clearInterval(renewal);
      log.warn({ requestId: jobId, tokenId: token.id }, 'lease lost while this worker stalled and its token is full: the call is stopped');
      lost.abort(new Error('lease lost'));
    };
    const renewal = setInterval(() => void renew().catch(() => undefined), this.options.leaseMs / 3);
    renewal.unref();
    let released = false;
    return {
      token,
      lost: lost.signal,
      release: async (outcome, retryAfterMs = 0, what = '') => {
        if (released) return 0;
        released = true;
        clearInterval(renewal);
        const o = this.options;
        const [cooldownMs, healthChange] = await this.redis.eastxRelease(
          leaseKey,
          this.keys.failures(token.id),
          this.keys.cooldown(token.id),
          this.keys.cooldownLevel(token.id),
          this.keys.channelHealth(token.channelId),
          jobId,
          outcome,
          Math.max(0, Math.round(Math.min(retryAfterMs, o.maxRetryAfterMs))),
          o.failuresBeforeCooldown,
          o.baseBackoffMs,
          o.maxBackoffMs,
          o.unhealthyAfter,
          what.slice(0, 500),
        );
        if (healthChange > 0)
          log.warn(
            { channelId: token.channelId, failuresInRow: o.unhealthyAfter, lastError: what.slice(0, 500) },
            'channel unhealthy: its routes are skipped while another can serve, and it is probed until it answers',
          );
        if (healthChange < 0) log.info({ channelId: token.channelId }, 'channel healthy again');
        return cooldownMs;
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
