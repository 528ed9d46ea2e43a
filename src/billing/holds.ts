import { sql } from 'kysely';
import { retryOnDeadlock, runScript, type Db } from '../db/index.js';

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
 * Reserves the worst case against the account balance and the key's cap in one conditional UPDATE
 * (SPEC §3): admitted only if both still have room, so concurrent requests can never overdraw. The hold
 * row (for settlement and the sweeper) is inserted only if the UPDATE matched (ROW_COUNT), in the same
 * transaction, sent as one round trip so the account's row lock is held for microseconds, not for
 * several client round trips.
 */
const PLACE_HOLD = `
START TRANSACTION;
UPDATE users u JOIN api_keys k ON k.id = ? AND k.user_id = u.id
  SET u.held_nano = u.held_nano + ?, k.held_nano = k.held_nano + ?
  WHERE u.id = ? AND u.balance_nano - u.held_nano >= ?
    AND (k.cap_nano IS NULL OR k.cap_nano - k.spent_nano - k.held_nano >= ?);
INSERT INTO holds (request_id, user_id, key_id, channel_id, amount_nano)
  SELECT ?, ?, ?, ?, ? FROM DUAL WHERE ROW_COUNT() > 0;
COMMIT;`;

export async function placeHold(db: Db, hold: HoldRequest): Promise<boolean> {
  const { requestId, userId, keyId, channelId, amountNano: amount } = hold;
  const results = await retryOnDeadlock(() =>
    runScript(db, PLACE_HOLD, [keyId, amount, amount, userId, amount, amount, requestId, userId, keyId, channelId, amount]),
  );
  return (results[2] as { affectedRows: number }).affectedRows === 1;
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
