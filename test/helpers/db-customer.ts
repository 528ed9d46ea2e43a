import { addToBalance } from '../../src/billing/ledger.js';
import type { Db } from '../../src/db/index.js';

/** A user credited `balanceNano` with one active key, written straight into the database (no web process). */
export async function fundedKey(db: Db, email: string, balanceNano: bigint): Promise<{ userId: number; keyId: number }> {
  const user = await db.insertInto('users').values({ email, password_hash: null, balance_nano: 0, held_nano: 0 }).executeTakeFirstOrThrow();
  const userId = Number(user.insertId);
  await addToBalance(db, userId, 'credit', balanceNano, null);
  const key = await db
    .insertInto('api_keys')
    .values({
      user_id: userId,
      name: 'k',
      prefix: 'sk-test',
      key_hash: email,
      rpm_limit: 60,
      cap_nano: null,
      spent_nano: 0,
      held_nano: 0,
      status: 'active',
    })
    .executeTakeFirstOrThrow();
  return { userId, keyId: Number(key.insertId) };
}
