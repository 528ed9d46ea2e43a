import { randomUUID } from 'node:crypto';
import type { Prices } from '../billing/money.js';
import type { Db } from '../db/index.js';
import type { ChannelType, Modality, ModelStatus, TokenStatus } from '../db/schema.js';
import type { Redis, RedisKeys } from '../redis/index.js';

export interface Channel {
  id: number;
  name: string;
  type: ChannelType;
  baseUrl: string;
}

/** One way to serve a model (SPEC §4): a channel, its name for the model, priority (higher first) and weight. */
export interface ModelRoute {
  channelId: number;
  upstreamModel: string;
  priority: number;
  weight: number;
}

export interface Model {
  id: string;
  displayName: string;
  ownedBy: string;
  modality: Modality;
  status: ModelStatus;
  /** Every route, in the order they are tried: priority descending, then weight descending, then as listed. */
  routes: ModelRoute[];
  /** The route tried first (routes[0]): its channel and upstream model name. */
  channelId: number;
  upstreamModel: string;
  prices: Prices;
  maxOutputTokens: number;
  vision: boolean;
  tools: boolean;
  sizes: string[];
  created: number;
}

export interface UpstreamToken {
  id: number;
  channelId: number;
  name: string;
  maxConcurrency: number;
  status: TokenStatus;
  secretEnc: string;
}

export interface CatalogSnapshot {
  version: string;
  models: Map<string, Model>;
  channels: Map<number, Channel>;
  tokensByChannel: Map<number, UpstreamToken[]>;
}

interface RouteRowOrder {
  priority: number;
  weight: number;
  position: number;
  id: number;
}

/** The order routes are tried in (and listed): priority descending, then weight descending, then as the operator listed them. */
export const byRouteOrder = (a: RouteRowOrder, b: RouteRowOrder) =>
  b.priority - a.priority || b.weight - a.weight || a.position - b.position || Number(a.id) - Number(b.id);

async function loadSnapshot(db: Db, version: string): Promise<CatalogSnapshot> {
  const [modelRows, routeRows, channelRows, tokenRows] = await Promise.all([
    db.selectFrom('models').selectAll().execute(),
    db.selectFrom('model_routes').selectAll().execute(),
    db.selectFrom('channels').selectAll().execute(),
    db.selectFrom('upstream_tokens').selectAll().orderBy('id').execute(),
  ]);
  const routesByModel = new Map<string, ModelRoute[]>();
  for (const r of routeRows.sort(byRouteOrder)) {
    const list = routesByModel.get(r.model_id) ?? [];
    list.push({ channelId: Number(r.channel_id), upstreamModel: r.upstream_model, priority: r.priority, weight: r.weight });
    routesByModel.set(r.model_id, list);
  }
  const models = new Map<string, Model>();
  for (const m of modelRows) {
    const routes = routesByModel.get(m.id) ?? [];
    models.set(m.id, {
      id: m.id,
      displayName: m.display_name,
      ownedBy: m.owned_by,
      modality: m.modality,
      status: m.status,
      routes,
      channelId: routes[0]?.channelId ?? 0,
      upstreamModel: routes[0]?.upstreamModel ?? '',
      prices: {
        inputMicro: BigInt(m.input_micro),
        outputMicro: BigInt(m.output_micro),
        imageNano: BigInt(m.image_nano),
        ...(m.cache_read_micro != null && { cacheReadMicro: BigInt(m.cache_read_micro) }),
        ...(m.cache_write_micro != null && { cacheWriteMicro: BigInt(m.cache_write_micro) }),
      },
      maxOutputTokens: m.max_output_tokens,
      vision: Boolean(m.vision),
      tools: Boolean(m.tools),
      sizes: JSON.parse(m.sizes) as string[],
      created: Math.floor(new Date(m.created_at).getTime() / 1000),
    });
  }
  const channels = new Map<number, Channel>();
  for (const c of channelRows) {
    channels.set(Number(c.id), { id: Number(c.id), name: c.name, type: c.type, baseUrl: c.base_url.replace(/\/+$/, '') });
  }
  const tokensByChannel = new Map<number, UpstreamToken[]>();
  for (const t of tokenRows) {
    const channelId = Number(t.channel_id);
    const list = tokensByChannel.get(channelId) ?? [];
    list.push({ id: Number(t.id), channelId, name: t.name, maxConcurrency: t.max_concurrency, status: t.status, secretEnc: t.secret_enc });
    tokensByChannel.set(channelId, list);
  }
  return { version, models, channels, tokensByChannel };
}

/**
 * Models, channels and tokens, cached in process. The cache is valid while Redis holds the same catalog
 * version; every admin change sets a new version before and after it writes MySQL, so no process serves a stale catalog
 * to a request that starts after the change.
 */
export class Catalog {
  private snapshot: CatalogSnapshot | undefined;
  private loading: Promise<CatalogSnapshot> | undefined;
  /** The newest version announced on the catalog channel (worker processes follow it instead of asking Redis). */
  private announced: string | null | undefined;

  constructor(
    private readonly db: Db,
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
  ) {}

  /** The catalog for `version` (as read from Redis by the caller), reloading when it changed. */
  async at(version: string | null): Promise<CatalogSnapshot> {
    const wanted = version ?? '';
    if (this.snapshot?.version === wanted) return this.snapshot;
    this.loading ??= loadSnapshot(this.db, wanted).finally(() => (this.loading = undefined));
    const loaded = await this.loading;
    if (loaded.version !== wanted) return this.at(version);
    this.snapshot = loaded;
    return loaded;
  }

  /** The catalog this process holds, without asking Redis whether it is still current. */
  loaded(): CatalogSnapshot | undefined {
    return this.snapshot;
  }

  async current(): Promise<CatalogSnapshot> {
    return this.at(await this.redis.get(this.keys.catalogVersion()));
  }

  /** Records a version heard on the catalog channel (or read by a periodic check). */
  announce(version: string | null): void {
    this.announced = version;
  }

  /**
   * The catalog as last announced, without a Redis round trip: for worker processes, which subscribe to
   * the catalog channel. Until a version was announced it reads Redis like `current()`.
   */
  async latest(): Promise<CatalogSnapshot> {
    return this.announced === undefined ? this.current() : this.at(this.announced);
  }

  /** Call after any change to models, channels or tokens. */
  static async changed(redis: Redis, keys: RedisKeys): Promise<void> {
    const version = randomUUID();
    await redis.set(keys.catalogVersion(), version);
    await redis.publish(keys.catalogChannel(), version);
  }
}
