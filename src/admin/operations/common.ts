import type { Db } from '../../db/index.js';
import { ApiError } from '../../http/errors.js';
import type { Redis, RedisKeys } from '../../redis/index.js';
import type { SecretBox } from '../../upstream/secrets.js';

/**
 * The operator's operations (SPEC §5), shared by the admin API, the CLI and the console. Inputs are already
 * validated by ../schemas.ts; failures are ApiErrors (404 for a missing row named in the path, 400 naming a
 * body field). Every change to channels, tokens or models bumps the catalog version, and every key change
 * the key's version, around the MySQL write (`announcedAround`), so all web processes see it on their next
 * request. Money moves only through src/billing.
 */
export interface AdminDeps {
  db: Db;
  redis: Redis;
  keys: RedisKeys;
  secrets: SecretBox;
}

/**
 * Runs a MySQL write that processes cache, announcing it in Redis before the write as well as after: a change
 * that cannot reach the processes' caches (Redis unreachable) is not made at all, and a process that reloaded
 * meanwhile reloads again.
 */
export async function announcedAround<T>(announce: () => Promise<void>, write: () => Promise<T>): Promise<T> {
  await announce();
  const result = await write();
  await announce();
  return result;
}

export const notFound = (what: string, id: number | string) => new ApiError('not_found', `no ${what} with id ${id}`);

/** A numeric id from a path or CLI argument, in its one spelling (no sign, space or leading zero); anything else names no row (404). */
export function rowIdFrom(raw: string | undefined, what: string): number {
  if (!/^[1-9]\d{0,14}$/.test(raw ?? '')) throw notFound(what, raw ?? '');
  return Number(raw);
}

export const isDuplicateKey = (err: unknown) => (err as { code?: string }).code === 'ER_DUP_ENTRY';

export async function userRow(db: Db, id: number) {
  return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
}
