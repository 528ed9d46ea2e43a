import { sql } from 'kysely';
import { type Db, retryOnDeadlock } from '../db/index.js';
import { log } from '../log.js';
import type { Redis, RedisKeys } from '../redis/index.js';
import { releaseHold } from './holds.js';

/**
 * SPEC §2: a request whose client got an error is never charged. The hold row is the idempotency token of
 * settlement (src/billing/settlement.ts): releasing it makes any later settlement charge nothing. Whoever
 * answers an error without knowing the request's fate uses this module to make the request unbillable.
 */

export interface BillingState {
  /** The hold is still open: nothing charged yet, and a settlement may still charge it. */
  held: boolean;
  /** The settled charge (nano-USD), if there is one. */
  chargedNano: bigint | null;
}

/**
 * Hold and charge as one statement sees them (one snapshot: settlement deletes the hold and inserts the
 * charge in one transaction, so a request is seen either held or settled, never neither in between).
 */
export async function billingState(db: Db, requestId: string): Promise<BillingState> {
  const { rows } = await sql<{ held: number | string; charged: number | string | null }>`
    SELECT EXISTS(SELECT 1 FROM holds WHERE request_id = ${requestId}) AS held,
           (SELECT -amount_nano FROM ledger WHERE request_id = ${requestId} AND kind = 'charge') AS charged`.execute(db);
  const row = rows[0];
  return { held: Number(row?.held ?? 0) === 1, chargedNano: row?.charged == null ? null : BigInt(row.charged) };
}

/**
 * Takes back a request's settled charge, for a client that got an error instead of the answer: the ledger
 * row goes and the balance and the key's spend are restored, in one transaction (the audit stays exact).
 * Returns the amount given back, or null when there was no charge.
 */
export async function reverseCharge(db: Db, requestId: string): Promise<bigint | null> {
  return retryOnDeadlock(() =>
    db.transaction().execute(async (trx) => {
      const charge = await trx
        .selectFrom('ledger')
        .select(['id', 'user_id', 'key_id', 'amount_nano'])
        .where('request_id', '=', requestId)
        .where('kind', '=', 'charge')
        .forUpdate()
        .executeTakeFirst();
      if (!charge) return null;
      const amount = BigInt(charge.amount_nano); // charges are negative
      await trx.deleteFrom('ledger').where('id', '=', charge.id).execute();
      await sql`
      UPDATE users u JOIN api_keys k ON k.id = ${charge.key_id} AND k.user_id = u.id
      SET u.balance_nano = u.balance_nano - ${amount}, k.spent_nano = k.spent_nano + ${amount}
      WHERE u.id = ${charge.user_id}`.execute(trx);
      return -amount;
    }),
  );
}

export type VoidOutcome = 'released' | 'reversed' | 'none';

/** Makes sure a request ends uncharged, whatever its state: releases its hold, or takes back its charge. */
export async function voidRequest(db: Db, requestId: string): Promise<VoidOutcome> {
  if (await releaseHold(db, requestId)) return 'released';
  return (await reverseCharge(db, requestId)) === null ? 'none' : 'reversed';
}

/** While MariaDB is unreachable: notes in Redis that this request must end uncharged (`voidDeferred` acts on it). */
export async function deferVoid(redis: Redis, keys: RedisKeys, requestId: string): Promise<void> {
  await redis.sadd(keys.unbillable(), requestId);
}

/** `voidRequest`, or `deferVoid` when MariaDB cannot be reached. */
export async function voidNowOrLater(db: Db, redis: Redis, keys: RedisKeys, requestId: string): Promise<VoidOutcome | 'deferred'> {
  try {
    return await voidRequest(db, requestId);
  } catch {
    await deferVoid(redis, keys, requestId);
    return 'deferred';
  }
}

/** Voids the requests noted by `deferVoid` (any number of processes may do this at once; it is idempotent). */
export async function voidDeferred(
  db: Db,
  redis: Redis,
  keys: RedisKeys,
  batch = 100,
): Promise<Array<{ requestId: string; outcome: VoidOutcome }>> {
  const done: Array<{ requestId: string; outcome: VoidOutcome }> = [];
  for (const requestId of await redis.srandmember(keys.unbillable(), batch)) {
    done.push({ requestId, outcome: await voidRequest(db, requestId) });
    await redis.srem(keys.unbillable(), requestId);
  }
  return done;
}

/**
 * SPEC §2: a client that gets an error is never charged. Before an error its web process decided on itself
 * goes to a client that has seen nothing of the answer, the request is made unbillable: an open hold is
 * released (a settlement after that charges nothing). A request found already charged has an answer:
 * `awaitAnswer` may wait for it, and only if none comes is the charge taken back. With MariaDB unreachable
 * the request is noted in Redis and a worker's sweeper makes it unbillable once MariaDB is back.
 * Returns the answer if one came, else 'unbillable'.
 */
export async function unbillableUnlessAnswered<A>(
  deps: { db: Db; redis: Redis; keys: RedisKeys },
  requestId: string,
  awaitAnswer?: () => Promise<A | undefined>,
): Promise<A | 'unbillable'> {
  try {
    let state = await billingState(deps.db, requestId);
    if (state.held) {
      if (await releaseHold(deps.db, requestId)) return 'unbillable';
      state = await billingState(deps.db, requestId); // settled meanwhile
    }
    if (state.chargedNano === null) return 'unbillable';
    const answer = await awaitAnswer?.();
    if (answer !== undefined) return answer;
    if ((await reverseCharge(deps.db, requestId)) !== null) {
      log.warn({ requestId }, 'took back the charge of a request whose answer could not be delivered');
    }
  } catch {
    await deferVoid(deps.redis, deps.keys, requestId).catch(() =>
      log.error({ requestId }, 'neither MariaDB nor Redis answers: an errored request may stay billable'),
    );
  }
  return 'unbillable';
}
