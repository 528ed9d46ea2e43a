import { sql } from 'kysely';
import { KeyStore } from '../../accounts/key-store.js';
import { displayPrefix, generateApiKey, hashApiKey } from '../../accounts/keys.js';
import type { Db } from '../../db/index.js';
import type { KeyStatus } from '../../db/schema.js';
import { type KeyRow, presentKey, presentNewKey } from '../present.js';
import type { KeyInput, KeyPatch } from '../schemas.js';
import { type AdminDeps, announcedAround, notFound, userRow } from './common.js';

/** API keys: created once with the full key, changed and revoked with instant effect everywhere. */
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
      allowed_models: input.allowed_models === null ? null : JSON.stringify(input.allowed_models),
      max_concurrent_requests: input.max_concurrent_requests,
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

/**
 * Writes `changes` to the key (a revoked key never becomes active again), announced around the write (a key
 * revoked in MySQL alone kept working where it was cached).
 */
async function changeKey(
  deps: AdminDeps,
  keyId: number,
  status: KeyStatus | undefined,
  changes: Partial<Pick<KeyRow, 'rpm_limit' | 'cap_nano' | 'expires_at' | 'allowed_models' | 'max_concurrent_requests'>>,
) {
  const row = await keyRow(deps.db, keyId);
  if (!row) throw notFound('key', keyId);
  const set = {
    ...changes,
    ...(status !== undefined && { status: sql<KeyStatus>`CASE WHEN status = 'revoked' THEN 'revoked' ELSE ${status} END` }),
  };
  if (Object.keys(set).length > 0) {
    const announce = () => KeyStore.changed(deps.redis, deps.keys, row.key_hash);
    await announcedAround(announce, () => deps.db.updateTable('api_keys').set(set).where('id', '=', keyId).execute());
  }
  return presentKey((await keyRow(deps.db, keyId))!);
}

export async function updateKey(deps: AdminDeps, keyId: number, patch: KeyPatch) {
  const status = patch.disabled === undefined ? undefined : patch.disabled ? 'disabled' : 'active';
  return changeKey(deps, keyId, status, {
    ...(patch.rpm_limit !== undefined && { rpm_limit: patch.rpm_limit }),
    ...(patch.balance_cap_usd !== undefined && { cap_nano: patch.balance_cap_usd === null ? null : patch.balance_cap_usd.toString() }),
    ...(patch.expires_at !== undefined && { expires_at: patch.expires_at }),
    ...(patch.allowed_models !== undefined && {
      allowed_models: patch.allowed_models === null ? null : JSON.stringify(patch.allowed_models),
    }),
    ...(patch.max_concurrent_requests !== undefined && { max_concurrent_requests: patch.max_concurrent_requests }),
  });
}

/** Revokes the key for good; the row stays for the ledger. */
export async function revokeKey(deps: AdminDeps, keyId: number) {
  return changeKey(deps, keyId, 'revoked', {});
}
