import { hashPassword } from '../../accounts/passwords.js';
import { createRedemptionCodes as mintCodes } from '../../billing/codes.js';
import { addToBalance } from '../../billing/ledger.js';
import { formatUsd } from '../../billing/money.js';
import { badRequest } from '../../http/errors.js';
import { presentLedger, presentUser } from '../present.js';
import type { AdjustInput, CodesInput, CreditInput, UsageQuery, UserInput, UsersQuery } from '../schemas.js';
import { type AdminDeps, isDuplicateKey, notFound, userRow } from './common.js';

/** Users, their money (through src/billing), redemption codes and the usage ledger. */
export async function createUser(deps: AdminDeps, input: UserInput) {
  const passwordHash = input.password === undefined ? null : await hashPassword(input.password);
  try {
    const result = await deps.db
      .insertInto('users')
      .values({ email: input.email, password_hash: passwordHash, is_admin: input.is_admin ? 1 : 0, balance_nano: 0, held_nano: 0 })
      .executeTakeFirstOrThrow();
    return presentUser((await userRow(deps.db, Number(result.insertId)))!);
  } catch (err) {
    if (isDuplicateKey(err)) throw badRequest(`email: a user with the email ${input.email} already exists`);
    throw err;
  }
}

/** Users by exact email, or all of them newest first (`before_id` pages further back). */
export async function listUsers(deps: AdminDeps, query: UsersQuery) {
  const rows = await deps.db
    .selectFrom('users')
    .selectAll()
    .$if(query.email !== undefined, (q) => q.where('email', '=', query.email!))
    .$if(query.before_id !== undefined, (q) => q.where('id', '<', query.before_id!))
    .orderBy('id', 'desc')
    .limit(query.limit)
    .execute();
  return { data: rows.map(presentUser) };
}

export async function getUser(deps: AdminDeps, userId: number) {
  const row = await userRow(deps.db, userId);
  if (!row) throw notFound('user', userId);
  return presentUser(row);
}

export async function creditUser(deps: AdminDeps, userId: number, input: CreditInput) {
  return { balance_usd: formatUsd(await addToBalance(deps.db, userId, 'credit', input.amount_usd, input.note || null)) };
}

export async function adjustUser(deps: AdminDeps, userId: number, input: AdjustInput) {
  return { balance_usd: formatUsd(await addToBalance(deps.db, userId, 'adjustment', input.amount_usd, input.note)) };
}

export async function createRedemptionCodes(deps: AdminDeps, input: CodesInput) {
  return { amount_usd: formatUsd(input.amount_usd), codes: await mintCodes(deps.db, input.amount_usd, input.count) };
}

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
