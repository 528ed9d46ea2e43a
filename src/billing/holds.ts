import { sql } from 'kysely';
import { retryOnDeadlock, type Db } from '../db/index.js';

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
 * (SPEC §3): admitted only if both still have room, so concurrent requests can never overdraw.
 * The hold row records it for settlement and the sweeper, in the same transaction.
 */
export async function placeHold(db: Db, hold: HoldRequest): Promise<boolean> {
  return retryOnDeadlock(() => db.transaction().execute(async (trx) => {
    const amount = hold.amountNano;
    const result = await sql`
      UPDATE users u JOIN api_keys k ON k.id = ${hold.keyId} AND k.user_id = u.id
      SET u.held_nano = u.held_nano + ${amount}, k.held_nano = k.held_nano + ${amount}
      WHERE u.id = ${hold.userId}
        AND u.balance_nano - u.held_nano >= ${amount}
        AND (k.cap_nano IS NULL OR k.cap_nano - k.spent_nano - k.held_nano >= ${amount})`.execute(trx);
    if (Number(result.numAffectedRows ?? 0) === 0) return false;
    await trx.insertInto('holds').values({ request_id: hold.requestId, user_id: hold.userId, key_id: hold.keyId, channel_id: hold.channelId, amount_nano: amount }).execute();
    return true;
  }));
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
