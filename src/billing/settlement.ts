import { sql } from 'kysely';
import { retryOnDeadlock, type Db } from '../db/index.js';
import { costNano, type Prices, type Usage } from './money.js';

export interface Settlement {
  requestId: string;
  userId: number;
  keyId: number;
  model: string;
  prices: Prices;
  usage: Usage;
  /** The worst case held for this request; the charge never exceeds it. */
  holdNano: bigint;
  estimated: boolean;
}

export interface SettlementOutcome {
  costNano: bigint;
  /** false when this request id was already settled (a re-delivered job): nothing changed. */
  applied: boolean;
}

function isDuplicateKey(err: unknown): boolean {
  return (err as { code?: string }).code === 'ER_DUP_ENTRY';
}

/**
 * Debits the actual cost and releases the hold in one transaction, exactly once per request id: the ledger
 * row goes in first, and its unique request id makes a second settlement fail before it changes anything.
 * A zero cost writes no ledger row and only releases the hold.
 */
export async function settle(db: Db, s: Settlement): Promise<SettlementOutcome> {
  const computed = costNano(s.prices, s.usage);
  const cost = computed > s.holdNano ? s.holdNano : computed;
  try {
    return await retryOnDeadlock(() => db.transaction().execute(async (trx) => {
      // Lock order: hold row, then the account and key rows, then the ledger insert (whose unique request id
      // rolls the whole transaction back on a second settlement).
      const deleted = await trx.deleteFrom('holds').where('request_id', '=', s.requestId).executeTakeFirst();
      const released = Number(deleted.numDeletedRows) > 0 ? s.holdNano : 0n;
      if (cost === 0n && released === 0n) return { costNano: 0n, applied: false };
      await sql`
        UPDATE users u JOIN api_keys k ON k.id = ${s.keyId} AND k.user_id = u.id
        SET u.balance_nano = u.balance_nano - ${cost}, u.held_nano = u.held_nano - ${released},
            k.spent_nano = k.spent_nano + ${cost}, k.held_nano = k.held_nano - ${released},
            k.last_used_at = CURRENT_TIMESTAMP(3)
        WHERE u.id = ${s.userId}`.execute(trx);
      if (cost > 0n) {
        await trx
          .insertInto('ledger')
          .values({
            request_id: s.requestId,
            user_id: s.userId,
            key_id: s.keyId,
            kind: 'charge',
            model: s.model,
            prompt_tokens: s.usage.promptTokens,
            completion_tokens: s.usage.completionTokens,
            images: s.usage.images,
            amount_nano: -cost,
            estimated: s.estimated ? 1 : 0,
          })
          .execute();
      }
      return { costNano: cost, applied: true };
    }));
  } catch (err) {
    if (isDuplicateKey(err)) return { costNano: cost, applied: false };
    throw err;
  }
}

/** Releases a hold without charging (a request that failed with no output). Idempotent. */
export async function releaseHold(db: Db, requestId: string): Promise<boolean> {
  return retryOnDeadlock(() => db.transaction().execute(async (trx) => {
    const hold = await trx.selectFrom('holds').selectAll().where('request_id', '=', requestId).forUpdate().executeTakeFirst();
    if (!hold) return false;
    await trx.deleteFrom('holds').where('request_id', '=', requestId).execute();
    await sql`
      UPDATE users u JOIN api_keys k ON k.id = ${hold.key_id} AND k.user_id = u.id
      SET u.held_nano = u.held_nano - ${BigInt(hold.amount_nano)}, k.held_nano = k.held_nano - ${BigInt(hold.amount_nano)}
      WHERE u.id = ${hold.user_id}`.execute(trx);
    return true;
  }));
}
