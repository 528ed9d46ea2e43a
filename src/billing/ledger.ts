import { sql } from 'kysely';
import type { Db } from '../db/index.js';
import { ApiError, badRequest } from '../http/errors.js';

/**
 * Money that moves without a request (SPEC §3): credits, adjustments and redemptions, each one UPDATE of the
 * balance and its ledger row in one transaction, so the balance always equals the sum of the ledger.
 */
export type BalanceMove = 'credit' | 'adjustment' | 'redemption';

/** The most a balance may hold, $1e9: far below BIGINT's $9.2e9, so sums of balances and ledger rows stay exact. */
const MAX_BALANCE_NANO = 1_000_000_000n * 1_000_000_000n;

const noUser = (userId: number) => new ApiError('not_found', `no user with id ${userId}`);
const affected = (result: { numUpdatedRows?: bigint }) => Number(result.numUpdatedRows ?? 0n);

/** A ledger row for money that moves without a request: no request id, key, model or tokens. */
const ledgerRow = (userId: number, kind: BalanceMove, amountNano: bigint, note: string | null) => ({
  user_id: userId,
  kind,
  amount_nano: amountNano,
  note,
  prompt_tokens: 0,
  completion_tokens: 0,
  images: 0,
  estimated: 0,
});

type Trx = Parameters<Parameters<ReturnType<Db['transaction']>['execute']>[0]>[0];

/** Adds to the balance and writes the ledger row, inside the caller's transaction; returns the new balance. */
async function move(trx: Trx, userId: number, kind: BalanceMove, amountNano: bigint, note: string | null): Promise<bigint> {
  const result = await trx
    .updateTable('users')
    .set({ balance_nano: sql<bigint>`balance_nano + ${amountNano}` })
    .where('id', '=', userId)
    .$if(amountNano < 0n, (q) => q.where(sql<boolean>`balance_nano - held_nano + ${amountNano} >= 0`))
    .$if(amountNano > 0n, (q) => q.where(sql<boolean>`balance_nano <= ${MAX_BALANCE_NANO - amountNano}`))
    .executeTakeFirst();
  if (affected(result) === 0) {
    if (!(await trx.selectFrom('users').select('id').where('id', '=', userId).executeTakeFirst())) throw noUser(userId);
    const field = kind === 'redemption' ? 'code' : 'amount_usd';
    if (amountNano > 0n)
      throw badRequest(`${field}: the balance would exceed the most an account may hold (${MAX_BALANCE_NANO / 1_000_000_000n} USD)`);
    throw badRequest(`${field}: the debit would make the available balance (balance − held) negative`);
  }
  await trx
    .insertInto('ledger')
    .values(ledgerRow(userId, kind, amountNano, note))
    .execute();
  const row = await trx.selectFrom('users').select('balance_nano').where('id', '=', userId).executeTakeFirstOrThrow();
  return BigInt(row.balance_nano);
}

/**
 * Credits (or, with a negative amount, debits) a balance. A debit is refused (400) when it would leave the
 * available balance (balance − held) below zero.
 */
export function addToBalance(
  db: Db,
  userId: number,
  kind: Exclude<BalanceMove, 'redemption'>,
  amountNano: bigint,
  note: string | null,
): Promise<bigint> {
  return db.transaction().execute((trx) => move(trx, userId, kind, amountNano, note));
}

/**
 * Redeems a code (by its hash) for a user: claims it with a conditional UPDATE (only one of any number of
 * concurrent redemptions can change the row), then credits the balance with a `redemption` ledger row, in
 * one transaction.
 */
export function redeem(db: Db, userId: number, codeHash: string): Promise<{ amountNano: bigint; balanceNano: bigint }> {
  return db.transaction().execute(async (trx) => {
    const claimed = await trx
      .updateTable('redemption_codes')
      .set({ redeemed_by: userId, redeemed_at: sql<Date>`CURRENT_TIMESTAMP(3)` })
      .where('code_hash', '=', codeHash)
      .where('redeemed_by', 'is', null)
      .executeTakeFirst();
    if (affected(claimed) === 0) throw badRequest('code: unknown or already redeemed');
    const { id, amount_nano } = await trx
      .selectFrom('redemption_codes')
      .select(['id', 'amount_nano'])
      .where('code_hash', '=', codeHash)
      .executeTakeFirstOrThrow();
    const amountNano = BigInt(amount_nano);
    const balanceNano = await move(trx, userId, 'redemption', amountNano, `redemption code #${id}`);
    return { amountNano, balanceNano };
  });
}
