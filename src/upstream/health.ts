import type { TokenStatus } from '../db/schema.js';
import type { Redis, RedisKeys } from '../redis/index.js';

/**
 * Channel health as operators see it on each route (SPEC §4), read from Redis: the health hash that the
 * lease release script keeps (src/upstream/release.lua) and the tokens' cooldowns.
 * - `disabled`: no active token
 * - `unhealthy`: CHANNEL_UNHEALTHY_AFTER failed calls in a row; skipped while another route can serve, and
 *   probed in the background until it answers
 * - `cooling`: every active token is cooling down (`cooling_until`: the first one back)
 * - `healthy`: otherwise
 */
export type RouteState = 'healthy' | 'cooling' | 'unhealthy' | 'disabled';
export const ROUTE_STATES: readonly RouteState[] = ['healthy', 'cooling', 'unhealthy', 'disabled'];

export interface ChannelHealth {
  state: RouteState;
  /** ISO time when the first cooling token is back, while every active one is cooling; else null */
  coolingUntil: string | null;
  unhealthySince: string | null;
  /** the last failure (5xx, no connection, no first byte, 429), kept after the channel recovered */
  lastError: string | null;
  lastErrorAt: string | null;
  /** failed calls in a row, across the channel's tokens */
  failuresInRow: number;
}

export interface ChannelTokens {
  id: number;
  tokens: Array<{ id: number; status: TokenStatus }>;
}

const isoOf = (ms: string | undefined) => (ms ? new Date(Number(ms)).toISOString() : null);

/** The health of each channel, in one pipeline (an HGETALL per channel, a PTTL per active token). */
export async function readChannelHealth(redis: Redis, keys: RedisKeys, channels: ChannelTokens[]): Promise<Map<number, ChannelHealth>> {
  const pipeline = redis.pipeline();
  for (const channel of channels) {
    pipeline.hgetall(keys.channelHealth(channel.id));
    for (const token of channel.tokens) if (token.status === 'active') pipeline.pttl(keys.cooldown(token.id));
  }
  const [results, now] = [(await pipeline.exec()) ?? [], Date.now()];
  const health = new Map<number, ChannelHealth>();
  let i = 0;
  for (const channel of channels) {
    const hash = (results[i++]?.[1] ?? {}) as Record<string, string>;
    const active = channel.tokens.filter((t) => t.status === 'active');
    const cooling = active.map(() => Number(results[i++]?.[1] ?? -2)).filter((ms) => ms > 0);
    const allCooling = active.length > 0 && cooling.length === active.length;
    const unhealthySince = isoOf(hash.unhealthy_since);
    const state: RouteState = active.length === 0 ? 'disabled' : unhealthySince !== null ? 'unhealthy' : allCooling ? 'cooling' : 'healthy';
    health.set(channel.id, {
      state,
      coolingUntil: allCooling ? new Date(now + Math.min(...cooling)).toISOString() : null,
      unhealthySince,
      lastError: hash.last_error || null,
      lastErrorAt: isoOf(hash.last_error_at),
      failuresInRow: Number(hash.failures ?? 0),
    });
  }
  return health;
}

/** Channels marked unhealthy, by id (the probe's work list). */
export async function unhealthyChannels(redis: Redis, keys: RedisKeys, channelIds: number[]): Promise<number[]> {
  if (channelIds.length === 0) return [];
  const pipeline = redis.pipeline();
  for (const id of channelIds) pipeline.hexists(keys.channelHealth(id), 'unhealthy_since');
  const results = (await pipeline.exec()) ?? [];
  return channelIds.filter((_, i) => results[i]?.[1] === 1);
}

/** Opens an unhealthy channel to traffic again without a probe call (a channel nothing can probe). */
export async function reopenChannel(redis: Redis, keys: RedisKeys, channelId: number): Promise<void> {
  await redis.multi().hdel(keys.channelHealth(channelId), 'unhealthy_since').hset(keys.channelHealth(channelId), 'failures', 0).exec();
}

/**
 * Forgets a token's cooldown and what would cool it again at once (its backoff level, its 5xx in a row):
 * an operator re-enabling a token means "try it again now". One DEL.
 */
export async function clearCooldown(redis: Redis, keys: RedisKeys, tokenId: number): Promise<void> {
  await redis.del(keys.cooldown(tokenId), keys.cooldownLevel(tokenId), keys.failures(tokenId));
}
