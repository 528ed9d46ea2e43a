import { loadLua, type Redis, type RedisKeys } from '../redis/index.js';

const WINDOW_MS = 60_000;
const SCRIPT = loadLua(import.meta.url, './rpm.lua');

export interface RpmDecision {
  admitted: boolean;
  limit: number;
  remaining: number;
  /** ms until a slot frees up */
  resetMs: number;
}

type Reply = Promise<[number, number, number]>;
type RpmRedis = Redis & {
  eastxRpm(key: string, limit: number, windowMs: number, member: string): Reply;
  eastxRpmIfCurrent(key: string, keyVersion: string, catalogVersion: string, ...args: [number, number, string, string, string]): Reply;
};

/** The versions a cached key and catalog were checked against (see KeyStore and Catalog). */
export interface CheckedAgainst {
  keyHash: string;
  keyVersion: string;
  catalogVersion: string;
}

/** Per-key requests-per-minute limit, exact across every web process: one Lua call per request. */
export class RpmLimiter {
  private readonly redis: RpmRedis;

  constructor(
    redis: Redis,
    private readonly keys: RedisKeys,
  ) {
    if (!('eastxRpm' in redis)) redis.defineCommand('eastxRpm', { numberOfKeys: 1, lua: SCRIPT });
    if (!('eastxRpmIfCurrent' in redis)) redis.defineCommand('eastxRpmIfCurrent', { numberOfKeys: 3, lua: SCRIPT });
    this.redis = redis as RpmRedis;
  }

  async take(keyId: number, limit: number, requestId: string): Promise<RpmDecision> {
    const [admitted, remaining, resetMs] = await this.redis.eastxRpm(this.keys.rpm(keyId), limit, WINDOW_MS, requestId);
    return { admitted: admitted === 1, limit, remaining, resetMs };
  }

  /** Takes back a request counted by `take` that was refused right after (SPEC §4: a concurrency 429 is not counted). */
  async untake(keyId: number, requestId: string): Promise<void> {
    await this.redis.zrem(this.keys.rpm(keyId), requestId);
  }

  /**
   * Sends the request's RPM take now, with a key's cached limit, to ride in the same Redis write as the key
   * check (see EarlyTake). Redis takes it only while the key's and the catalog's versions are still those the
   * request was checked against: a request checked against a stale key or catalog is never counted, not even
   * for a moment. Call it in the same event-loop turn as the key check.
   */
  takeEarly(keyId: number, limit: number, requestId: string, checked: CheckedAgainst): EarlyTake {
    const { keys } = this;
    const reply = this.redis.eastxRpmIfCurrent(
      keys.rpm(keyId),
      keys.keyVersion(checked.keyHash),
      keys.catalogVersion(),
      limit,
      WINDOW_MS,
      requestId,
      checked.keyVersion,
      checked.catalogVersion,
    );
    const decision = reply.then(([admitted, remaining, resetMs]) => ({ admitted: admitted === 1, limit, remaining, resetMs }));
    return new EarlyTake(this, keyId, requestId, decision);
  }
}

/**
 * An RPM take sent by the key step (src/http/guards.ts) together with the key check, once the request's body
 * and model checks admitted it, so that the RPM step (which SPEC §2 puts after them) costs no round trip of
 * its own. Redis does not take it when the key or the catalog changed since; the key step takes it back in
 * the one race left (a change landing between the take and the key check). The RPM step uses it when it
 * admitted the request, and asks afresh when it did not. The take and
 * the RPM step's own use the same member (the request id), so a take is always taken back before the step
 * would count the request again.
 */
export class EarlyTake {
  private settled: 'pending' | 'used' | 'dropped' = 'pending';

  constructor(
    private readonly limiter: RpmLimiter,
    private readonly keyId: number,
    private readonly requestId: string,
    private readonly decision: Promise<RpmDecision>,
  ) {
    decision.catch(() => undefined); // its failure is the RPM step's to report, or nothing to take back
  }

  /** The decision for the RPM step: undefined when the take refused the request (the step asks again). */
  async use(): Promise<RpmDecision | undefined> {
    if (this.settled !== 'pending') return undefined;
    const decision = await this.decision;
    if (!decision.admitted) {
      this.settled = 'dropped';
      return undefined;
    }
    this.settled = 'used';
    return decision;
  }

  /** Takes the request back out of the window, unless the RPM step used the take. */
  async drop(): Promise<void> {
    if (this.settled !== 'pending') return;
    this.settled = 'dropped';
    const decision = await this.decision.catch(() => undefined);
    // one that cannot be taken back (Redis gone) leaves the window when the minute is over
    if (decision?.admitted) await this.limiter.untake(this.keyId, this.requestId).catch(() => undefined);
  }
}

/** OpenAI's duration style for `x-ratelimit-reset-requests`: "120ms", "7s", "1m0s". */
export function formatResetDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.ceil(ms))}ms`;
  const seconds = Math.ceil(ms / 1000);
  return seconds < 60 ? `${seconds}s` : `${Math.floor(seconds / 60)}m${seconds % 60}s`;
}
