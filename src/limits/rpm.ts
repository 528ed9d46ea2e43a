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

type RpmRedis = Redis & { eastxRpm(key: string, limit: number, windowMs: number, member: string): Promise<[number, number, number]> };

/** Per-key requests-per-minute limit, exact across every web process: one Lua call per request. */
export class RpmLimiter {
  private readonly redis: RpmRedis;

  constructor(
    redis: Redis,
    private readonly keys: RedisKeys,
  ) {
    if (!('eastxRpm' in redis)) redis.defineCommand('eastxRpm', { numberOfKeys: 1, lua: SCRIPT });
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
}

/** OpenAI's duration style for `x-ratelimit-reset-requests`: "120ms", "7s", "1m0s". */
export function formatResetDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.ceil(ms))}ms`;
  const seconds = Math.ceil(ms / 1000);
  return seconds < 60 ? `${seconds}s` : `${Math.floor(seconds / 60)}m${seconds % 60}s`;
}
