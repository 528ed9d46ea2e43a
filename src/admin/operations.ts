import { createHash, randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { KeyStore } from '../accounts/key-store.js';
import { displayPrefix, generateApiKey, hashApiKey } from '../accounts/keys.js';
import { hashPassword } from '../accounts/passwords.js';
import { formatUsd } from '../billing/money.js';
import { Catalog } from '../catalog/catalog.js';
import type { Db } from '../db/index.js';
import type { KeyStatus } from '../db/schema.js';
import { ApiError, badRequest } from '../http/errors.js';
import { describeIssue } from '../http/body.js';
import type { Redis, RedisKeys } from '../redis/index.js';
import { secretHint, type SecretBox } from '../upstream/secrets.js';
import {
  presentChannel,
  presentKey,
  presentLedger,
  presentModel,
  presentNewKey,
  presentToken,
  presentUser,
  type KeyRow,
} from './present.js';
import {
  modelId,
  type AdjustInput,
  type ChannelInput,
  type CodesInput,
  type CreditInput,
  type KeyInput,
  type KeyPatch,
  type ModelInput,
  type TokenInput,
  type TokenPatch,
  type UsageQuery,
  type UserInput,
} from './schemas.js';

/**
 * The operator's operations (SPEC §5), shared by the admin API and the CLI. Inputs are already validated by
 * ./schemas.ts; failures are ApiErrors (404 for a missing row named in the path, 400 naming a body field).
 * Every change to channels, tokens or models bumps the catalog version, and every key change the key's
 * version, after the MySQL write, so all web processes see it on their next request.
 */
export interface AdminDeps {
  db: Db;
  redis: Redis;
  keys: RedisKeys;
  secrets: SecretBox;
}

const notFound = (what: string, id: number | string) => new ApiError('not_found', `no ${what} with id ${id}`);

/** A numeric id from a path or CLI argument; anything else names no row (404). */
export function rowIdFrom(raw: string | undefined, what: string): number {
  const text = (raw ?? '').trim();
  const id = /^\d{1,15}$/.test(text) ? Number(text) : 0;
  if (id < 1) throw notFound(what, raw ?? '');
  return id;
}

const isDuplicateKey = (err: unknown) => (err as { code?: string }).code === 'ER_DUP_ENTRY';
const affected = (result: { numUpdatedRows?: bigint; numAffectedRows?: bigint }) => Number(result.numUpdatedRows ?? result.numAffectedRows ?? 0n);

// ---- channels and upstream tokens

async function channelRow(db: Db, id: number) {
  return db.selectFrom('channels').selectAll().where('id', '=', id).executeTakeFirst();
}

async function tokenRow(db: Db, id: number) {
  return db.selectFrom('upstream_tokens').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function createChannel(deps: AdminDeps, input: ChannelInput) {
  const result = await deps.db.insertInto('channels').values(input).executeTakeFirstOrThrow();
  await Catalog.changed(deps.redis, deps.keys);
  return presentChannel((await channelRow(deps.db, Number(result.insertId)))!);
}

/** Every channel with its tokens (never their secrets). */
export async function listChannels(deps: AdminDeps) {
  const [channels, tokens] = await Promise.all([
    deps.db.selectFrom('channels').selectAll().orderBy('id').execute(),
    deps.db.selectFrom('upstream_tokens').selectAll().orderBy('id').execute(),
  ]);
  return channels.map((channel) => ({
    ...presentChannel(channel),
    tokens: tokens.filter((t) => Number(t.channel_id) === Number(channel.id)).map(presentToken),
  }));
}

export async function addToken(deps: AdminDeps, channelId: number, input: TokenInput) {
  if (!(await channelRow(deps.db, channelId))) throw notFound('channel', channelId);
  const result = await deps.db
    .insertInto('upstream_tokens')
    .values({
      channel_id: channelId,
      name: input.name,
      secret_enc: deps.secrets.seal(input.secret),
      secret_hint: secretHint(input.secret),
      max_concurrency: input.max_concurrency,
      status: 'active',
    })
    .executeTakeFirstOrThrow();
  await Catalog.changed(deps.redis, deps.keys);
  return presentToken((await tokenRow(deps.db, Number(result.insertId)))!);
}

export async function updateToken(deps: AdminDeps, tokenId: number, patch: TokenPatch) {
  if (!(await tokenRow(deps.db, tokenId))) throw notFound('token', tokenId);
  const changes = {
    ...(patch.max_concurrency !== undefined && { max_concurrency: patch.max_concurrency }),
    ...(patch.status !== undefined && { status: patch.status, disabled_reason: patch.status === 'disabled' ? 'disabled by an operator' : null }),
  };
  if (Object.keys(changes).length > 0) {
    await deps.db.updateTable('upstream_tokens').set(changes).where('id', '=', tokenId).execute();
    await Catalog.changed(deps.redis, deps.keys);
  }
  return presentToken((await tokenRow(deps.db, tokenId))!);
}

// ---- models

async function modelRow(db: Db, id: string) {
  return db.selectFrom('models').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function listModels(deps: AdminDeps) {
  const rows = await deps.db.selectFrom('models').selectAll().orderBy('id').execute();
  return rows.map(presentModel);
}

/** Inserts or replaces the model `id` (a PUT: omitted optional fields take their defaults). */
export async function putModel(deps: AdminDeps, id: string, input: ModelInput) {
  const checkedId = modelId.safeParse(id);
  if (!checkedId.success) throw badRequest(`model id ${JSON.stringify(id)}: ${describeIssue(checkedId.error).replace(/^body: /, '')}`);
  if (!(await channelRow(deps.db, input.channel_id))) throw badRequest(`channel_id: no channel with id ${input.channel_id}`);
  const fields = {
    display_name: input.display_name,
    owned_by: input.owned_by,
    modality: input.modality,
    status: input.status,
    channel_id: input.channel_id,
    upstream_model: input.upstream_model,
    input_micro: input.input_price_per_1m,
    output_micro: input.output_price_per_1m,
    image_nano: input.price_per_image,
    max_output_tokens: input.max_output_tokens,
    vision: input.vision ? 1 : 0,
    tools: input.tools ? 1 : 0,
    sizes: JSON.stringify(input.sizes),
  };
  await deps.db
    .insertInto('models')
    .values({ id, ...fields })
    .onDuplicateKeyUpdate({ ...fields, updated_at: sql<Date>`CURRENT_TIMESTAMP(3)` })
    .execute();
  await Catalog.changed(deps.redis, deps.keys);
  return presentModel((await modelRow(deps.db, id))!);
}

// ---- users and money

async function userRow(db: Db, id: number) {
  return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function createUser(deps: AdminDeps, input: UserInput) {
  const passwordHash = input.password === undefined ? null : await hashPassword(input.password);
  try {
    const result = await deps.db.insertInto('users').values({ email: input.email, password_hash: passwordHash, balance_nano: 0, held_nano: 0 }).executeTakeFirstOrThrow();
    return presentUser((await userRow(deps.db, Number(result.insertId)))!);
  } catch (err) {
    if (isDuplicateKey(err)) throw badRequest(`email: a user with the email ${input.email} already exists`);
    throw err;
  }
}

export async function getUser(deps: AdminDeps, userId: number) {
  const row = await userRow(deps.db, userId);
  if (!row) throw notFound('user', userId);
  return presentUser(row);
}

type MoneyKind = 'credit' | 'adjustment';

/** A ledger row for money that moves without a request: no request id, key, model or tokens. */
const ledgerRow = (userId: number, kind: MoneyKind | 'redemption', amountNano: bigint, note: string | null) => ({
  user_id: userId,
  kind,
  amount_nano: amountNano,
  note,
  prompt_tokens: 0,
  completion_tokens: 0,
  images: 0,
  estimated: 0,
});

/**
 * Adds a signed amount to the balance and its ledger row in one transaction. A negative amount is refused
 * (400) when it would leave the available balance (balance − held) below zero.
 */
async function addToBalance(db: Db, userId: number, kind: MoneyKind, amountNano: bigint, note: string | null) {
  const balance = await db.transaction().execute(async (trx) => {
    const result = await trx
      .updateTable('users')
      .set({ balance_nano: sql<bigint>`balance_nano + ${amountNano}` })
      .where('id', '=', userId)
      .$if(amountNano < 0n, (q) => q.where(sql<boolean>`balance_nano - held_nano + ${amountNano} >= 0`))
      .executeTakeFirst();
    if (affected(result) === 0) {
      if (!(await userRow(trx, userId))) throw notFound('user', userId);
      throw badRequest('amount_usd: the debit would make the available balance (balance − held) negative');
    }
    await trx.insertInto('ledger').values(ledgerRow(userId, kind, amountNano, note)).execute();
    const row = await trx.selectFrom('users').select('balance_nano').where('id', '=', userId).executeTakeFirstOrThrow();
    return BigInt(row.balance_nano);
  });
  return { balance_usd: formatUsd(balance) };
}

export async function creditUser(deps: AdminDeps, userId: number, input: CreditInput) {
  return addToBalance(deps.db, userId, 'credit', input.amount_usd, input.note || null);
}

export async function adjustUser(deps: AdminDeps, userId: number, input: AdjustInput) {
  return addToBalance(deps.db, userId, 'adjustment', input.amount_usd, input.note);
}

// ---- API keys

async function keyRow(db: Db, id: number): Promise<KeyRow | undefined> {
  return db.selectFrom('api_keys').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Creates a key; the answer carries the full key, which is never shown again. */
export async function createKey(deps: AdminDeps, userId: number, input: KeyInput) {
  if (!(await userRow(deps.db, userId))) throw notFound('user', userId);
  const key = generateApiKey();
  const keyHash = hashApiKey(key);
  const result = await deps.db
    .insertInto('api_keys')
    .values({
      user_id: userId,
      name: input.name,
      prefix: displayPrefix(key),
      key_hash: keyHash,
      rpm_limit: input.rpm_limit,
      cap_nano: input.balance_cap_usd,
      spent_nano: 0,
      held_nano: 0,
      status: 'active',
      expires_at: input.expires_at,
    })
    .executeTakeFirstOrThrow();
  await KeyStore.changed(deps.redis, deps.keys, keyHash);
  return presentNewKey((await keyRow(deps.db, Number(result.insertId)))!, key);
}

export async function getKey(deps: AdminDeps, keyId: number) {
  const row = await keyRow(deps.db, keyId);
  if (!row) throw notFound('key', keyId);
  return presentKey(row);
}

export async function listUserKeys(deps: AdminDeps, userId: number) {
  if (!(await userRow(deps.db, userId))) throw notFound('user', userId);
  const rows = await deps.db.selectFrom('api_keys').selectAll().where('user_id', '=', userId).orderBy('id').execute();
  return rows.map(presentKey);
}

/** Writes `changes` to the key (a revoked key never becomes active again), then tells every process. */
async function changeKey(deps: AdminDeps, keyId: number, status: KeyStatus | undefined, changes: Partial<Pick<KeyRow, 'rpm_limit' | 'cap_nano' | 'expires_at'>>) {
  const row = await keyRow(deps.db, keyId);
  if (!row) throw notFound('key', keyId);
  const set = {
    ...changes,
    ...(status !== undefined && { status: sql<KeyStatus>`CASE WHEN status = 'revoked' THEN 'revoked' ELSE ${status} END` }),
  };
  if (Object.keys(set).length > 0) {
    await deps.db.updateTable('api_keys').set(set).where('id', '=', keyId).execute();
    await KeyStore.changed(deps.redis, deps.keys, row.key_hash);
  }
  return presentKey((await keyRow(deps.db, keyId))!);
}

export async function updateKey(deps: AdminDeps, keyId: number, patch: KeyPatch) {
  const status = patch.disabled === undefined ? undefined : patch.disabled ? 'disabled' : 'active';
  return changeKey(deps, keyId, status, {
    ...(patch.rpm_limit !== undefined && { rpm_limit: patch.rpm_limit }),
    ...(patch.balance_cap_usd !== undefined && { cap_nano: patch.balance_cap_usd === null ? null : patch.balance_cap_usd.toString() }),
    ...(patch.expires_at !== undefined && { expires_at: patch.expires_at }),
  });
}

/** Revokes the key for good; the row stays for the ledger. */
export async function revokeKey(deps: AdminDeps, keyId: number) {
  return changeKey(deps, keyId, 'revoked', {});
}

// ---- redemption codes

/** Crockford base32: no I, L, O, U, so codes survive being read aloud or retyped. */
const CODE_ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const CODE_PATTERN = /^EASTX([0-9A-Z]{16})$/;

/** `EASTX-XXXX-XXXX-XXXX-XXXX`: 16 base32 characters, 80 random bits. */
function generateCode(): string {
  const bytes = randomBytes(10);
  let bits = 0n;
  for (const byte of bytes) bits = (bits << 8n) | BigInt(byte);
  let chars = '';
  for (let i = 0; i < 16; i++) chars = CODE_ALPHABET[Number((bits >> BigInt(5 * i)) & 31n)] + chars;
  return `EASTX-${chars.match(/.{4}/g)!.join('-')}`;
}

/** The stored form of a code: sha256 of its canonical spelling (case, spaces and dashes don't matter). */
function codeHash(code: string): string | undefined {
  const match = CODE_PATTERN.exec(code.toUpperCase().replace(/[\s-]/g, ''));
  if (!match) return undefined;
  return createHash('sha256').update(`EASTX-${match[1].match(/.{4}/g)!.join('-')}`).digest('hex');
}

/** Creates `count` single-use codes worth `amount_usd` each; the codes are shown once (only hashes are stored). */
export async function createRedemptionCodes(deps: AdminDeps, input: CodesInput) {
  const codes = Array.from({ length: input.count }, generateCode);
  await deps.db
    .insertInto('redemption_codes')
    .values(codes.map((code) => ({ code_hash: codeHash(code)!, amount_nano: input.amount_usd })))
    .execute();
  return { amount_usd: formatUsd(input.amount_usd), codes };
}

/**
 * Redeems a code for a user: claims it with a conditional UPDATE (only one of any number of concurrent
 * redemptions can change the row), then credits the balance with a `redemption` ledger row, in one transaction.
 */
export async function redeemCode(db: Db, userId: number, code: string): Promise<{ amountNano: bigint; balanceNano: bigint }> {
  const hash = codeHash(code);
  if (!hash) throw badRequest('code: not a redemption code (expected EASTX-XXXX-XXXX-XXXX-XXXX)');
  return db.transaction().execute(async (trx) => {
    const claimed = await trx
      .updateTable('redemption_codes')
      .set({ redeemed_by: userId, redeemed_at: sql<Date>`CURRENT_TIMESTAMP(3)` })
      .where('code_hash', '=', hash)
      .where('redeemed_by', 'is', null)
      .executeTakeFirst();
    if (affected(claimed) === 0) throw badRequest('code: unknown or already redeemed');
    const { id, amount_nano } = await trx.selectFrom('redemption_codes').select(['id', 'amount_nano']).where('code_hash', '=', hash).executeTakeFirstOrThrow();
    const amountNano = BigInt(amount_nano);
    const credited = await trx
      .updateTable('users')
      .set({ balance_nano: sql<bigint>`balance_nano + ${amountNano}` })
      .where('id', '=', userId)
      .executeTakeFirst();
    if (affected(credited) === 0) throw notFound('user', userId);
    await trx.insertInto('ledger').values(ledgerRow(userId, 'redemption', amountNano, `redemption code #${id}`)).execute();
    const user = await trx.selectFrom('users').select('balance_nano').where('id', '=', userId).executeTakeFirstOrThrow();
    return { amountNano, balanceNano: BigInt(user.balance_nano) };
  });
}

// ---- usage

/** Ledger rows, newest first, filtered by user, key and time; `before_id` pages further back. */
export async function listUsage(deps: AdminDeps, query: UsageQuery) {
  const rows = await deps.db
    .selectFrom('ledger')
    .selectAll()
    .$if(query.user_id !== undefined, (q) => q.where('user_id', '=', query.user_id!))
    .$if(query.key_id !== undefined, (q) => q.where('key_id', '=', query.key_id!))
    .$if(query.since !== undefined, (q) => q.where('created_at', '>=', query.since!))
    .$if(query.before_id !== undefined, (q) => q.where('id', '<', query.before_id!))
    .orderBy('id', 'desc')
    .limit(query.limit)
    .execute();
  return { data: rows.map(presentLedger) };
}
