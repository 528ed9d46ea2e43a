import type { Selectable } from 'kysely';
import { formatPricePerMillion, formatUsd } from '../billing/money.js';
import type {
  ApiKeysTable,
  ChannelsTable,
  LedgerTable,
  ModelRoutesTable,
  ModelsTable,
  UpstreamTokensTable,
  UsersTable,
} from '../db/schema.js';
import type { ChannelHealth } from '../upstream/health.js';

/**
 * Rows → the admin API's JSON (SPEC §5): ids as numbers, amounts and prices as decimal strings, times as
 * ISO strings. Secrets never appear: no token secret, no API key hash.
 */

type Money = number | string | bigint;

const usd = (nano: Money) => formatUsd(BigInt(nano));
const usdOrNull = (nano: Money | null) => (nano === null ? null : usd(nano));
const iso = (date: Date | string | null) => (date === null ? null : new Date(date).toISOString());

export type ChannelRow = Selectable<ChannelsTable>;
export type TokenRow = Selectable<UpstreamTokensTable>;
export type ModelRow = Selectable<ModelsTable>;
export type RouteRow = Selectable<ModelRoutesTable>;
export type UserRow = Selectable<UsersTable>;
export type KeyRow = Selectable<ApiKeysTable>;
export type LedgerRow = Selectable<LedgerTable>;

export function presentChannel(row: ChannelRow) {
  return { id: Number(row.id), name: row.name, type: row.type, base_url: row.base_url, created_at: iso(row.created_at) };
}

export function presentToken(row: TokenRow) {
  return {
    id: Number(row.id),
    channel_id: Number(row.channel_id),
    name: row.name,
    max_concurrency: row.max_concurrency,
    status: row.status,
    disabled_reason: row.disabled_reason,
    secret_hint: row.secret_hint,
    created_at: iso(row.created_at),
  };
}

/** A route with its channel's live state (SPEC §4); `health` undefined: the channel's state is unknown. */
export function presentRoute(row: RouteRow, health: ChannelHealth | undefined) {
  return {
    channel_id: Number(row.channel_id),
    upstream_model: row.upstream_model,
    priority: row.priority,
    weight: row.weight,
    state: health?.state ?? 'disabled',
    cooling_until: health?.coolingUntil ?? null,
    unhealthy_since: health?.unhealthySince ?? null,
    last_error: health?.lastError ?? null,
    last_error_at: health?.lastErrorAt ?? null,
    failures_in_row: health?.failuresInRow ?? 0,
  };
}

/**
 * A model with its routes in trying order; `channel_id` and `upstream_model` name the route tried first
 * (what a model with one route was before routes existed).
 */
export function presentModel(row: ModelRow, routes: Array<ReturnType<typeof presentRoute>>) {
  return {
    id: row.id,
    display_name: row.display_name,
    owned_by: row.owned_by,
    modality: row.modality,
    status: row.status,
    channel_id: routes[0]?.channel_id ?? null,
    upstream_model: routes[0]?.upstream_model ?? null,
    routes,
    input_price_per_1m: formatPricePerMillion(BigInt(row.input_micro)),
    output_price_per_1m: formatPricePerMillion(BigInt(row.output_micro)),
    // what cache reads and writes are billed at: their own price, or the input price when none is set
    cache_read_price_per_1m: formatPricePerMillion(BigInt(row.cache_read_micro ?? row.input_micro)),
    cache_write_price_per_1m: formatPricePerMillion(BigInt(row.cache_write_micro ?? row.input_micro)),
    price_per_image: usd(row.image_nano),
    max_output_tokens: row.max_output_tokens,
    vision: Boolean(row.vision),
    tools: Boolean(row.tools),
    sizes: JSON.parse(row.sizes) as string[],
    created_at: iso(row.created_at),
    updated_at: iso(row.updated_at),
  };
}

export function presentUser(row: UserRow) {
  return {
    id: Number(row.id),
    email: row.email,
    balance_usd: usd(row.balance_nano),
    held_usd: usd(row.held_nano),
    is_admin: Boolean(row.is_admin),
    created_at: iso(row.created_at),
  };
}

export function presentKey(row: KeyRow) {
  return {
    id: Number(row.id),
    user_id: Number(row.user_id),
    name: row.name,
    prefix: row.prefix,
    rpm_limit: row.rpm_limit,
    balance_cap_usd: usdOrNull(row.cap_nano),
    spent_usd: usd(row.spent_nano),
    held_usd: usd(row.held_nano),
    status: row.status,
    expires_at: iso(row.expires_at),
    allowed_models: row.allowed_models === null ? null : (JSON.parse(row.allowed_models) as string[]),
    max_concurrent_requests: row.max_concurrent_requests,
    last_used_at: iso(row.last_used_at),
    created_at: iso(row.created_at),
  };
}

/** A new key's answer: the full key, shown this once, then the stored fields. */
export function presentNewKey(row: KeyRow, key: string) {
  const { id, ...rest } = presentKey(row);
  return { id, key, ...rest };
}

export function presentLedger(row: LedgerRow) {
  return {
    id: Number(row.id),
    request_id: row.request_id,
    user_id: Number(row.user_id),
    key_id: row.key_id === null ? null : Number(row.key_id),
    kind: row.kind,
    model: row.model,
    prompt_tokens: row.prompt_tokens,
    completion_tokens: row.completion_tokens,
    cached_tokens: row.cached_tokens,
    cache_write_tokens: row.cache_write_tokens,
    images: row.images,
    amount_usd: usd(row.amount_nano),
    estimated: Boolean(row.estimated),
    note: row.note,
    created_at: iso(row.created_at),
  };
}
