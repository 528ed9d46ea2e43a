import { z } from 'zod';
import { presentLedger } from '../../admin/present.js';
import { redeemCode } from '../../billing/codes.js';
import { formatUsd } from '../../billing/money.js';
import { ApiError } from '../../http/errors.js';
import { type AppContext, principal } from '../../http/state.js';
import { validate } from '../form-input.js';
import { setFlash, takeFlash } from '../sessions.js';
import { redirect, render } from '../views.js';

/** /recharge: balance and held amount, redeeming a code (single use, src/billing), the ledger newest first. */

const PAGE = 50;
const account = (ctx: AppContext) => principal(ctx, 'account');

const pageQuery = z.object({
  before: z
    .string()
    .regex(/^\d{1,15}$/)
    .transform(Number)
    .optional(),
});
const redeemForm = z.object({ code: z.string().trim().min(1, 'is required').max(64, 'is not a redemption code') });

/**
 * One page of the user's ledger, newest first, and whether more follow. Keyset paging in two steps: the
 * page's ids from the (user_id, id) index alone (a range read of 51 entries however deep the page), then
 * those rows by primary key; asked in one step, MariaDB reads the index by user_id only and filters
 * every newer row on the way down (a second per deep page at a million rows).
 */
async function ledgerPage(ctx: AppContext, userId: number, before: number | undefined) {
  const db = ctx.services.db;
  const ids = await db
    .selectFrom('ledger')
    .select('id')
    .where('user_id', '=', userId)
    .$if(before !== undefined, (q) => q.where('id', '<', before!))
    .orderBy('id', 'desc')
    .limit(PAGE + 1)
    .execute();
  const pageIds = ids.slice(0, PAGE).map((r) => Number(r.id));
  const rows =
    pageIds.length === 0 ? [] : await db.selectFrom('ledger').selectAll().where('id', 'in', pageIds).orderBy('id', 'desc').execute();
  const entries = rows.map(presentLedger);
  return { entries, older: ids.length > PAGE ? pageIds[pageIds.length - 1] : null };
}

export async function showRecharge(ctx: AppContext, error?: string, status = 200): Promise<void> {
  const { user, session } = account(ctx);
  const query = pageQuery.safeParse(ctx.query);
  const before = query.success ? query.data.before : undefined;
  const [balance, ledger, flash] = await Promise.all([
    ctx.services.db.selectFrom('users').select(['balance_nano', 'held_nano']).where('id', '=', user.id).executeTakeFirstOrThrow(),
    ledgerPage(ctx, user.id, before),
    takeFlash(ctx, session, status === 200),
  ]);
  const balanceNano = BigInt(balance.balance_nano);
  const heldNano = BigInt(balance.held_nano);
  render(
    ctx,
    'recharge.njk',
    {
      title: 'Recharge',
      balance: formatUsd(balanceNano),
      held: formatUsd(heldNano),
      available: formatUsd(balanceNano - heldNano),
      ledger: ledger.entries,
      older: ledger.older,
      paged: before !== undefined,
      notice: flash.notice,
      error,
      code: status === 200 ? '' : (ctx.state.form?.code ?? ''),
    },
    status,
  );
}

export async function redeem(ctx: AppContext): Promise<void> {
  const { user, session } = account(ctx);
  try {
    const { code } = validate(redeemForm, { code: ctx.state.form?.code ?? '' });
    const { amountNano, balanceNano } = await redeemCode(ctx.services.db, user.id, code);
    await setFlash(ctx, session, { notice: `Code redeemed: +$${formatUsd(amountNano)}. Your balance is now $${formatUsd(balanceNano)}.` });
    redirect(ctx, '/recharge');
  } catch (err) {
    if (err instanceof ApiError && err.status === 400) return showRecharge(ctx, err.message.replace(/^code: /, 'Code: '), 400);
    throw err;
  }
}
