import { sql } from 'kysely';
import { batcherPer, MicroBatcher, runItemScript } from '../db/batcher.js';
import { type Db, retryOnDeadlock } from '../db/index.js';

export type HoldRefusal = 'insufficient_balance' | 'cap_reached';

export interface HoldRequest {
  requestId: string;
  userId: number;
  keyId: number;
  channelId: number;
  amountNano: bigint;
}

export interface Funds {
  /** balance − held of the account */
  availableNano: bigint;
  /** cap − spent − held of the key; null when the key has no cap */
  capLeftNano: bigint | null;
}

/**
 * Reserves the worst case against the account balance and the key's cap (SPEC §3): the hold row is
 * inserted only if both still have room, read under their row locks (FOR UPDATE), so concurrent requests
 * can never overdraw; then the account and the key take the amount of that hold row. Each statement
 * decides by the rows it sees (the hold row exists only if this transaction inserted it), never by
 * ROW_COUNT(): MariaDB runs a script whose client has gone (a connection cut) on to its COMMIT, and the
 * result it then fails to send sets ROW_COUNT() to -1 for the next statement. Concurrent holds of a
 * process go to MySQL together: one transaction, one round trip, one commit, each hold decided in turn
 * under the account's row lock.
 */
const HOLD_STATEMENTS = `
INSERT INTO holds (request_id, user_id, key_id, channel_id, amount_nano)
  SELECT ?, u.id, k.id, ?, ? FROM users u JOIN api_keys k ON k.id = ? AND k.user_id = u.id
  WHERE u.id = ? AND u.balance_nano - u.held_nano >= ?
    AND (k.cap_nano IS NULL OR k.cap_nano - k.spent_nano - k.held_nano >= ?)
  FOR UPDATE;
UPDATE holds h JOIN users u ON u.id = h.user_id JOIN api_keys k ON k.id = h.key_id
  SET u.held_nano = u.held_nano + h.amount_nano, k.held_nano = k.held_nano + h.amount_nano
  WHERE h.request_id = ?;`;

const placeHolds = (db: Db, holds: HoldRequest[]) =>
  runItemScript(db, holds, {
    statements: HOLD_STATEMENTS,
    resultsPerItem: 2,
    accountOf: (h) => h.userId,
    paramsOf: ({ requestId, userId, keyId, channelId, amountNano: amount }) => [
      requestId,
      channelId,
      amount,
      keyId,
      userId,
      amount,
      amount,
      requestId,
    ],
    resultOf: ([inserted]) => (inserted as { affectedRows: number }).affectedRows === 1,
  });

const holdBatcher = batcherPer((db: Db) => new MicroBatcher((holds: HoldRequest[]) => placeHolds(db, holds)));

export function placeHold(db: Db, hold: HoldRequest): Promise<boolean> {
  return holdBatcher(db).submit(hold);
}

export async function readFunds(db: Db, userId: number, keyId: number): Promise<Funds> {
  const row = await sql<{ available: string | number; cap_left: string | number | null }>`
    SELECT u.balance_nano - u.held_nano AS available,
           CASE WHEN k.cap_nano IS NULL THEN NULL ELSE k.cap_nano - k.spent_nano - k.held_nano END AS cap_left
    FROM users u JOIN api_keys k ON k.user_id = u.id
    WHERE u.id = ${userId} AND k.id = ${keyId}`.execute(db);
  const first = row.rows[0];
  if (!first) return { availableNano: 0n, capLeftNano: 0n };
  return { availableNano: BigInt(first.available), capLeftNano: first.cap_left === null ? null : BigInt(first.cap_left) };
}

/** What the request may spend: the smaller of the account's available balance and the key's remaining cap. */
export function spendable(funds: Funds): { budgetNano: bigint; limitedBy: HoldRefusal } {
  if (funds.capLeftNano !== null && funds.capLeftNano < funds.availableNano) {
    return { budgetNano: funds.capLeftNano, limitedBy: 'cap_reached' };
  }
  return { budgetNano: funds.availableNano, limitedBy: 'insufficient_balance' };
}

/** Releases a hold without charging (a request that failed with no output). Idempotent. */
export async function releaseHold(db: Db, requestId: string): Promise<boolean> {
  return retryOnDeadlock(() =>
    db.transaction().execute(async (trx) => {
      const hold = await trx.selectFrom('holds').selectAll().where('request_id', '=', requestId).forUpdate().executeTakeFirst();
      if (!hold) return false;
      await trx.deleteFrom('holds').where('request_id', '=', requestId).execute();
      await sql`
      UPDATE users u JOIN api_keys k ON k.id = ${hold.key_id} AND k.user_id = u.id
      SET u.held_nano = u.held_nano - ${BigInt(hold.amount_nano)}, k.held_nano = k.held_nano - ${BigInt(hold.amount_nano)}
      WHERE u.id = ${hold.user_id}`.execute(trx);
      return true;
    }),
  );
}

/** Whether the request's hold is still open (nothing settled or released yet). */
export async function holdExists(db: Db, requestId: string): Promise<boolean> {
  return (await db.selectFrom('holds').select('request_id').where('request_id', '=', requestId).executeTakeFirst()) !== undefined;
}
