import { sql } from 'kysely';
import type { Db } from '../db/index.js';
import { log } from '../log.js';
import type { Redis, RedisKeys } from '../redis/index.js';
import { releaseHold } from './holds.js';
import { voidDeferred } from './unbillable.js';

export interface HoldSweeperOptions {
  /** How often every worker process looks for orphaned holds. */
  intervalMs: number;
  /** Holds younger than this are never touched (the web side places the hold just before enqueueing). */
  minAgeMs: number;
  /** Holds older than this are released whatever their job says (past every deadline). */
  maxAgeMs: number;
}

/** Whether the job of a request is still queued or running (the queue knows; billing does not). */
export type JobAlive = (channelId: number, requestId: string) => Promise<boolean>;

/**
 * Releases holds whose request can no longer settle them (SPEC §3): the job is gone, finished, or failed
 * without cleaning up (its process was killed), or the hold outlived every deadline. Also makes unbillable
 * the requests that answered an error while MariaDB was unreachable (src/billing/unbillable.ts). Settlement,
 * release and reversal are idempotent per request id, so any number of worker processes may sweep at once.
 */
export class HoldSweeper {
  private timer: NodeJS.Timeout | undefined;
  private sweeping = false;

  constructor(
    private readonly db: Db,
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly jobAlive: JobAlive,
    private readonly options: HoldSweeperOptions,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      if (this.sweeping) return; // the last pass is still waiting for MariaDB or Redis
      this.sweeping = true;
      this.sweep()
        .catch((err) => log.error({ err: { message: (err as Error).message } }, 'hold sweep failed'))
        .finally(() => (this.sweeping = false));
    }, this.options.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** One pass; returns how many holds it released or charges it took back. */
  async sweep(): Promise<number> {
    let released = 0;
    for (const { requestId, outcome } of await voidDeferred(this.db, this.redis, this.keys)) {
      if (outcome === 'none') continue;
      released++;
      log.warn({ requestId, outcome }, 'made unbillable a request that answered an error during a database outage');
    }
    const candidates = await this.db
      .selectFrom('holds')
      .select(['request_id', 'channel_id', 'created_at'])
      .where('created_at', '<', sql<Date>`NOW(3) - INTERVAL ${this.options.minAgeMs * 1000} MICROSECOND`)
      .orderBy('created_at')
      .limit(500)
      .execute();
    for (const hold of candidates) {
      const age = Date.now() - new Date(hold.created_at).getTime();
      if (age < this.options.maxAgeMs && (await this.jobAlive(Number(hold.channel_id), hold.request_id))) continue;
      if (await releaseHold(this.db, hold.request_id)) {
        released++;
        log.warn({ requestId: hold.request_id, ageMs: age }, 'released an orphaned hold');
      }
    }
    return released;
  }
}
