import { z } from 'zod';
import * as ops from '../../admin/operations/index.js';
import { codesBody } from '../../admin/schemas.js';
import { formatUsd } from '../../billing/money.js';
import { ApiError } from '../../http/errors.js';
import { type AppContext, principal } from '../../http/state.js';
import { integer, validate } from '../form-input.js';
import { setFlash, takeFlash } from '../sessions.js';
import { redirect, render } from '../views.js';

/**
 * Redemption codes: minted in batches and shown once (only their hashes are stored), then listed by id
 * with their amount and who redeemed them when.
 */

const PAGE = 100;
const operator = (ctx: AppContext) => principal(ctx, 'operator-session');
const listQuery = z.object({ state: z.enum(['all', 'unused', 'used']).default('all') });

export async function showCodes(ctx: AppContext, error?: string, status = 200): Promise<void> {
  const { session } = operator(ctx);
  const state = listQuery.safeParse(ctx.query).data?.state ?? 'all';
  const db = ctx.services.db;
  const [rows, counts, flash] = await Promise.all([
    db
      .selectFrom('redemption_codes as c')
      .leftJoin('users as u', 'u.id', 'c.redeemed_by')
      .select(['c.id', 'c.amount_nano', 'c.created_at', 'c.redeemed_by', 'c.redeemed_at', 'u.email'])
      .$if(state === 'unused', (q) => q.where('c.redeemed_by', 'is', null))
      .$if(state === 'used', (q) => q.where('c.redeemed_by', 'is not', null))
      .orderBy('c.id', 'desc')
      .limit(PAGE)
      .execute(),
    db
      .selectFrom('redemption_codes')
      .select((eb) => [eb.fn.countAll<number>().as('all'), eb.fn.count<number>('redeemed_by').as('used')])
      .executeTakeFirstOrThrow(),
    takeFlash(ctx, session, status === 200),
  ]);
  render(
    ctx,
    'admin/codes.njk',
    {
      title: 'Redemption codes',
      state,
      codes: rows.map((r) => ({
        id: Number(r.id),
        amount: formatUsd(BigInt(r.amount_nano)),
        created_at: r.created_at,
        redeemed_by: r.redeemed_by === null ? null : Number(r.redeemed_by),
        email: r.email,
        redeemed_at: r.redeemed_at,
      })),
      counts: { all: Number(counts.all), used: Number(counts.used), unused: Number(counts.all) - Number(counts.used) },
      minted: flash.codes,
      notice: flash.notice,
      error,
      values: status === 200 ? {} : (ctx.state.form ?? {}),
    },
    status,
  );
}

export async function createCodes(ctx: AppContext): Promise<void> {
  const form = ctx.state.form ?? {};
  try {
    const input = validate(codesBody, { amount_usd: form.amount_usd ?? '', count: integer(form.count) });
    const { codes, amount_usd } = await ops.createRedemptionCodes(ctx.services, input);
    await setFlash(ctx, operator(ctx).session, {
      codes,
      notice: `${codes.length} code${codes.length === 1 ? '' : 's'} of $${amount_usd} minted. Copy them now: they are shown only this once.`,
    });
    redirect(ctx, '/admin/codes');
  } catch (err) {
    if (err instanceof ApiError && err.status === 400) return showCodes(ctx, err.message, 400);
    throw err;
  }
}
