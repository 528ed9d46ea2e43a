import { sql } from 'kysely';
import { z } from 'zod';
import * as ops from '../../admin/operations/index.js';
import { presentLedger, presentUser } from '../../admin/present.js';
import { adjustBody, creditBody } from '../../admin/schemas.js';
import { ApiError } from '../../http/errors.js';
import { type AppContext, principal } from '../../http/state.js';
import { noControlChars, optional, validate } from '../form-input.js';
import { setFlash, takeFlash } from '../sessions.js';
import { redirect, render } from '../views.js';

/** The operator area's overview and users: search, balances, credit and signed adjustments with a note. */

const operator = (ctx: AppContext) => principal(ctx, 'operator-session');
const formOf = (ctx: AppContext) => ctx.state.form ?? {};

export async function overview(ctx: AppContext): Promise<void> {
  operator(ctx);
  const db = ctx.services.db;
  const [users, money, keys, codes, catalog] = await Promise.all([
    db
      .selectFrom('users')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow(),
    db
      .selectFrom('users')
      .select([sql<string>`COALESCE(SUM(balance_nano), 0)`.as('balance'), sql<string>`COALESCE(SUM(held_nano), 0)`.as('held')])
      .executeTakeFirstOrThrow(),
    db
      .selectFrom('api_keys')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('status', '=', 'active')
      .executeTakeFirstOrThrow(),
    db
      .selectFrom('redemption_codes')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('redeemed_by', 'is', null)
      .executeTakeFirstOrThrow(),
    ctx.services.catalog.current(),
  ]);
  const tokens = [...catalog.tokensByChannel.values()].flat();
  render(ctx, 'admin/overview.njk', {
    title: 'Operator area',
    stats: {
      users: Number(users.n),
      balance: money.balance,
      held: money.held,
      activeKeys: Number(keys.n),
      unusedCodes: Number(codes.n),
      channels: catalog.channels.size,
      tokens: tokens.length,
      disabledTokens: tokens.filter((t) => t.status === 'disabled').length,
      models: catalog.models.size,
    },
  });
}

const searchQuery = z.object({ email: z.string().trim().toLowerCase().max(254).optional() });
/** LIKE pattern of a prefix: its own % and _ are literal. */
const prefixPattern = (text: string) => `${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

export async function users(ctx: AppContext): Promise<void> {
  operator(ctx);
  const parsed = searchQuery.safeParse(ctx.query);
  const email = parsed.success ? (parsed.data.email ?? '') : '';
  const rows = await ctx.services.db
    .selectFrom('users')
    .selectAll()
    .$if(email !== '', (q) => q.where('email', 'like', prefixPattern(email)))
    .orderBy('id', 'desc')
    .limit(50)
    .execute();
  render(ctx, 'admin/users.njk', { title: 'Users', email, users: rows.map(presentUser) });
}

export async function showUser(ctx: AppContext, error?: string, status = 200): Promise<void> {
  const { session } = operator(ctx);
  const userId = ops.rowIdFrom(ctx.params.id, 'user');
  const user = await ops.getUser(ctx.services, userId);
  const [keys, ledger, flash] = await Promise.all([
    ops.listUserKeys(ctx.services, userId),
    ctx.services.db.selectFrom('ledger').selectAll().where('user_id', '=', userId).orderBy('id', 'desc').limit(20).execute(),
    takeFlash(ctx, session, status === 200),
  ]);
  render(ctx, 'admin/user.njk', { title: user.email, user, keys, ledger: ledger.map(presentLedger), notice: flash.notice, error }, status);
}

async function moveMoney(ctx: AppContext, kind: 'credit' | 'adjust'): Promise<void> {
  const userId = ops.rowIdFrom(ctx.params.id, 'user');
  const form = formOf(ctx);
  try {
    const fields = {
      amount_usd: form.amount_usd ?? '',
      note: kind === 'credit' ? optional(noControlChars('note', form.note)) : (noControlChars('note', form.note) ?? ''),
    };
    const result =
      kind === 'credit'
        ? await ops.creditUser(ctx.services, userId, validate(creditBody, fields))
        : await ops.adjustUser(ctx.services, userId, validate(adjustBody, fields));
    await setFlash(ctx, operator(ctx).session, {
      notice: `${kind === 'credit' ? 'Credited' : 'Adjusted by'} $${(form.amount_usd ?? '').trim()}: the balance is now $${result.balance_usd}.`,
    });
    redirect(ctx, `/admin/users/${userId}`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 400) return showUser(ctx, err.message, 400);
    throw err;
  }
}

export const credit = (ctx: AppContext) => moveMoney(ctx, 'credit');
export const adjust = (ctx: AppContext) => moveMoney(ctx, 'adjust');
