import type { ColumnType, Generated } from 'kysely';

/** BIGINT money columns (nano-USD) come back as number or string; always read them through `BigInt()`. */
type Nano = ColumnType<number | string, string | number | bigint, string | number | bigint>;
type CreatedAt = ColumnType<Date, never, never>;

export interface UsersTable {
  id: Generated<number>;
  email: string;
  password_hash: string | null;
  is_admin: ColumnType<number, number | undefined, number>;
  balance_nano: Nano;
  held_nano: Nano;
  created_at: CreatedAt;
}

export type KeyStatus = 'active' | 'disabled' | 'revoked';

export interface ApiKeysTable {
  id: Generated<number>;
  user_id: number;
  name: string;
  prefix: string;
  key_hash: string;
  rpm_limit: number;
  cap_nano: Nano | null;
  spent_nano: Nano;
  held_nano: Nano;
  status: KeyStatus;
  expires_at: Date | null;
  last_used_at: Date | null;
  /** JSON array of model ids and `prefix*` patterns the key may use; NULL: every model */
  allowed_models: string | null;
  /** requests in flight at once; NULL: no limit */
  max_concurrent_requests: number | null;
  created_at: CreatedAt;
}

export type ChannelType = 'openai' | 'anthropic' | 'dashscope';

export interface ChannelsTable {
  id: Generated<number>;
  name: string;
  type: ChannelType;
  base_url: string;
  created_at: CreatedAt;
}

export type TokenStatus = 'active' | 'disabled';

export interface UpstreamTokensTable {
  id: Generated<number>;
  channel_id: number;
  name: string;
  secret_enc: string;
  secret_hint: string;
  max_concurrency: number;
  status: TokenStatus;
  disabled_reason: string | null;
  created_at: CreatedAt;
}

export type Modality = 'chat' | 'embedding' | 'image';
export type ModelStatus = 'active' | 'coming_soon' | 'disabled';

export interface ModelsTable {
  id: string;
  display_name: string;
  owned_by: string;
  modality: Modality;
  status: ModelStatus;
  /** micro-USD per 1M tokens */
  input_micro: Nano;
  output_micro: Nano;
  /** nano-USD per image */
  image_nano: Nano;
  /** micro-USD per 1M prompt tokens read from / written to the upstream's cache; NULL = the input price */
  cache_read_micro: ColumnType<number | string | null, string | number | bigint | null | undefined, string | number | bigint | null>;
  cache_write_micro: ColumnType<number | string | null, string | number | bigint | null | undefined, string | number | bigint | null>;
  max_output_tokens: number;
  vision: number;
  tools: number;
  /** JSON array of "WxH" strings */
  sizes: string;
  created_at: CreatedAt;
  updated_at: ColumnType<Date, never, Date>;
}

/** One way to serve a model: a channel and its name for the model; higher priority first, then by weight. */
export interface ModelRoutesTable {
  id: Generated<number>;
  model_id: string;
  channel_id: number;
  upstream_model: string;
  priority: ColumnType<number, number | undefined, number>;
  weight: ColumnType<number, number | undefined, number>;
  position: ColumnType<number, number | undefined, number>;
}

export type LedgerKind = 'charge' | 'credit' | 'redemption' | 'adjustment';

export interface LedgerTable {
  id: Generated<number>;
  request_id: string | null;
  user_id: number;
  key_id: number | null;
  kind: LedgerKind;
  model: string | null;
  prompt_tokens: number;
  completion_tokens: number;
  images: number;
  /** of prompt_tokens: read from the upstream's prompt cache, and written to it */
  cached_tokens: ColumnType<number, number | undefined, number>;
  cache_write_tokens: ColumnType<number, number | undefined, number>;
  amount_nano: Nano;
  estimated: number;
  note: string | null;
  created_at: ColumnType<Date, Date | undefined, never>;
}

export interface HoldsTable {
  request_id: string;
  user_id: number;
  key_id: number;
  /** the queue the request's job went to, so the sweeper can ask BullMQ whether it is still alive */
  channel_id: number;
  amount_nano: Nano;
  created_at: ColumnType<Date, Date | undefined, never>;
}

export interface RedemptionCodesTable {
  id: Generated<number>;
  code_hash: string;
  amount_nano: Nano;
  redeemed_by: number | null;
  redeemed_at: Date | null;
  created_at: CreatedAt;
}

/** Charges summed per account, UTC day and model (kept by settlement; read by the console's /usage). */
export interface UsageDailyTable {
  user_id: number;
  /** a DATE; select it formatted (DATE_FORMAT) to stay clear of time zones */
  day: string;
  model: string;
  requests: Nano;
  prompt_tokens: Nano;
  completion_tokens: Nano;
  images: Nano;
  spent_nano: Nano;
}

/** A stored `/v1/responses` answer (SPEC §1b): JSON texts, kept until `expires_at`. */
export interface ResponsesTable {
  id: string;
  user_id: number;
  key_id: number;
  model: string;
  /** the chat messages the next turn continues from (JSON array) */
  conversation: string;
  /** the response object (JSON) */
  response: string;
  created_at: ColumnType<Date, Date | undefined, never>;
  expires_at: Date;
}

export interface Database {
  users: UsersTable;
  api_keys: ApiKeysTable;
  channels: ChannelsTable;
  upstream_tokens: UpstreamTokensTable;
  models: ModelsTable;
  model_routes: ModelRoutesTable;
  ledger: LedgerTable;
  holds: HoldsTable;
  redemption_codes: RedemptionCodesTable;
  usage_daily: UsageDailyTable;
  responses: ResponsesTable;
}
