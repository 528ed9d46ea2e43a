import { randomUUID } from 'node:crypto';
import type { Db } from '../db/index.js';
import type { KeyStatus } from '../db/schema.js';
import type { Redis, RedisKeys } from '../redis/index.js';
import { type AllowedModels, parseAllowedModels } from './allowed-models.js';

export interface AuthKey {
  id: number;
  userId: number;
  rpmLimit: number;
  capNano: bigint | null;
  status: KeyStatus;
  expiresAt: number | null;
  /** null: every model */
  allowedModels: AllowedModels | null;
  /** null: no limit */
  maxConcurrent: number | null;
}

interface Cached {
  version: string;
  key: AuthKey | null;
}

const MAX_CACHED = 50_000;

/**
 * API keys by hash, cached in process. Each cached entry is valid only while Redis holds the same version
 * for that key hash; admin changes write MySQL, then a new version. The version is read together with the
 * catalog version in one MGET, so auth costs one Redis round trip and no MySQL query on a warm cache.
 */
export class KeyStore {
  private readonly cache = new Map<string, Cached>();
  /** Loads in flight by key hash and the version that prompted them: requests meeting one change share one. */
  private readonly loading = new Map<string, Promise<AuthKey | null>>();

  constructor(
    private readonly db: Db,
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
  ) {}

  /** The key as this process last loaded it, and its version then, unchecked: undefined when it has none. */
  peek(keyHash: string): Readonly<Cached> | undefined {
    return this.cache.get(keyHash);
  }

  /**
   * The key, checked against its version in Redis (the cached object itself when that is still current), with
   * that version and the catalog version read beside it.
   */
  async lookup(keyHash: string): Promise<{ key: AuthKey | null; version: string; catalogVersion: string | null }> {
    const [catalogVersion, keyVersion] = await this.redis.mget(this.keys.catalogVersion(), this.keys.keyVersion(keyHash));
    const version = keyVersion ?? '';
    const cached = this.cache.get(keyHash);
    if (cached && cached.version === version) return { key: cached.key, version, catalogVersion };
    const key = await this.loadOnce(keyHash, version);
    return { key, version, catalogVersion };
  }

  /** One MySQL read per key hash and version however many requests ask at once; it caches what it read. */
  private loadOnce(keyHash: string, version: string): Promise<AuthKey | null> {
    const flight = `${version} ${keyHash}`;
    let loading = this.loading.get(flight);
    if (!loading) {
      loading = this.load(keyHash)
        .then((key) => {
          if (this.cache.size >= MAX_CACHED) this.cache.delete(this.cache.keys().next().value as string);
          this.cache.set(keyHash, { version, key });
          return key;
        })
        .finally(() => this.loading.delete(flight));
      this.loading.set(flight, loading);
    }
    return loading;
  }

  private async load(keyHash: string): Promise<AuthKey | null> {
    const row = await this.db
      .selectFrom('api_keys')
      .select(['id', 'user_id', 'rpm_limit', 'cap_nano', 'status', 'expires_at', 'allowed_models', 'max_concurrent_requests'])
      .where('key_hash', '=', keyHash)
      .executeTakeFirst();
    if (!row) return null;
    return {
      id: Number(row.id),
      userId: Number(row.user_id),
      rpmLimit: row.rpm_limit,
      capNano: row.cap_nano === null ? null : BigInt(row.cap_nano),
      status: row.status,
      expiresAt: row.expires_at ? new Date(row.expires_at).getTime() : null,
      allowedModels: parseAllowedModels(row.allowed_models),
      maxConcurrent: row.max_concurrent_requests,
    };
  }

  /** Call after creating or changing a key (MySQL first): every process reloads it on its next request. */
  static async changed(redis: Redis, keys: RedisKeys, keyHash: string): Promise<void> {
    await redis.set(keys.keyVersion(keyHash), randomUUID());
  }
}
