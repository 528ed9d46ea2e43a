import { loadLua, type Redis, type RedisKeys } from '../redis/index.js';

const WINDOW_MS = 60_000;
const SCRIPT = loadLua(import.meta.url, './rpm.lua');

export interface RpmDecision {
  admitted: boolean;
  /** the window had room, but the key's concurrency slots were all taken: nothing was counted */
  busy: boolean;
  limit: number;
  remaining: number;
  /** ms until a slot frees up */
  resetMs: number;
}

/** A key's concurrency slot to take with the RPM count (see ConcurrencyLimiter.slotFor). */
export interface SlotRequest {
  set: string;
  max: number;
  leaseMs: number;
}

type Reply = Promise<[number, number, number, number]>;
type Args = [number, number, string, ...Array<string | number>];
/** One script, four shapes (their number of keys): plain or only-if-current, with or without the key's slot. */
const COMMANDS = { eastxRpm: 1, eastxRpmSlot: 2, eastxRpmIfCurrent: 3, eastxRpmIfCurrentSlot: 4 } as const;
type Command = keyof typeof COMMANDS;
type RpmRedis = Redis & { [command in Command]: (...keysAndArgs: Array<string | number>) => Reply };

/** The versions a cached key and catalog were checked against (see KeyStore and Catalog). */
export interface CheckedAgainst {
  keyHash: string;
  keyVersion: string;
  catalogVersion: string;
}

/**
 * Per-key requests-per-minute limit, exact across every web process: one Lua call per request, which also
 * takes the key's concurrency slot when asked to, so a request refused for concurrency is never counted.
 */
export class RpmLimiter {
  private readonly redis: RpmRedis;

  constructor(
    redis: Redis,
    private readonly keys: RedisKeys,
  ) {
    for (const [name, numberOfKeys] of Object.entries(COMMANDS)) {
      if (!(name in redis)) redis.defineCommand(name, { numberOfKeys, lua: SCRIPT });
    }
    this.redis = redis as RpmRedis;
  }

  async take(keyId: number, limit: number, requestId: string, slot?: SlotRequest): Promise<RpmDecision> {
    return this.run(keyId, limit, requestId, undefined, slot);
  }

  /** Takes back a request counted by `take`, and the slot taken with it. */
  async untake(keyId: number, requestId: string, slot?: SlotRequest): Promise<void> {
    await Promise.all([this.redis.zrem(this.keys.rpm(keyId), requestId), slot && this.redis.zrem(slot.set, requestId)]);
  }

  /**
   * Sends the request's RPM take now, with a key's cached limit, to ride in the same Redis write as the key
   * check (see EarlyTake). Redis takes it only while the key's and the catalog's versions are still those the
   * request was checked against: a request checked against a stale key or catalog is never counted, not even
   * for a moment. Call it in the same event-loop turn as the key check.
   */
  takeEarly(keyId: number, limit: number, requestId: string, checked: CheckedAgainst, slot?: SlotRequest): EarlyTake {
    return new EarlyTake(this, keyId, requestId, slot, this.run(keyId, limit, requestId, checked, slot));
  }

  private async run(keyId: number, limit: number, requestId: string, checked?: CheckedAgainst, slot?: SlotRequest): Promise<RpmDecision> {
    const { keys } = this;
    const versionKeys = checked ? [keys.keyVersion(checked.keyHash), keys.catalogVersion()] : [];
    const versions = checked ? [checked.keyVersion, checked.catalogVersion] : [];
    const args: Args = [limit, WINDOW_MS, requestId, ...versions, ...(slot ? [slot.max, slot.leaseMs] : [])];
    const command: Command = checked ? (slot ? 'eastxRpmIfCurrentSlot' : 'eastxRpmIfCurrent') : slot ? 'eastxRpmSlot' : 'eastxRpm';
    const [admitted, remaining, resetMs, busy] = await this.redis[command](
      keys.rpm(keyId),
      ...versionKeys,
      ...(slot ? [slot.set] : []),
      ...args,
    );
    return { admitted: admitted === 1, busy: busy === 1, limit, remaining, resetMs };
  }
}

/**
 * An RPM take sent by the key step (src/http/guards.ts) together with the key check, once the request's body
 * and model checks admitted it, so that the RPM step (which SPEC §2 puts after them) costs no round trip of
 * its own. Redis does not take it when the key or the catalog changed since; the key step takes it back in
 * the one race left (a change landing between the take and the key check). The RPM step uses it when it
 * admitted the request, and asks afresh when it did not. The take and the RPM step's own use the same member
 * (the request id), so a take is always taken back before the step would count the request again.
 */
export class EarlyTake {
  private settled: 'pending' | 'used' | 'dropped' = 'pending';

  constructor(
    private readonly limiter: RpmLimiter,
    private readonly keyId: number,
    private readonly requestId: string,
    private readonly slot: SlotRequest | undefined,
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

  /** Takes the request back out of the window (and its slot), unless the RPM step used the take. */
  async drop(): Promise<void> {
    if (this.settled !== 'pending') return;
    this.settled = 'dropped';
    const decision = await this.decision.catch(() => undefined);
    // one that cannot be taken back (Redis gone) leaves the window when the minute is over
    if (decision?.admitted) await this.limiter.untake(this.keyId, this.requestId, this.slot).catch(() => undefined);
  }
}

/** OpenAI's duration style for `x-ratelimit-reset-requests`: "120ms", "7s", "1m0s". */
export function formatResetDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.ceil(ms))}ms`;
  const seconds = Math.ceil(ms / 1000);
  return seconds < 60 ? `${seconds}s` : `${Math.floor(seconds / 60)}m${seconds % 60}s`;
}
