import * as ops from '../../admin/operations/index.js';
import { keyBody, keyPatch } from '../../admin/schemas.js';
import { ApiError } from '../../http/errors.js';
import { type AppContext, principal } from '../../http/state.js';
import { endOfDay, integer, noControlChars, orNull, validate } from '../form-input.js';

/** `allowed_models` as typed: ids and `prefix*` patterns separated by commas or spaces; empty: every model. */
const modelList = (value: string | undefined) =>
  orNull(value) === null
    ? null
    : value!
        .split(/[\s,]+/)
        .map((s) => s.trim())
        .filter(Boolean);
/** `max_concurrent_requests` as typed; empty: no limit. */
const limitOrNull = (value: string | undefined) => (orNull(value) === null ? null : integer(value));

import { setFlash, takeFlash } from '../sessions.js';
import { redirect, render } from '../views.js';

/**
 * /keys: the signed-in user's API keys. A new key is shown exactly once: it travels sealed in the session's
 * one-time flash from the POST to the page the browser is redirected to, and is gone on reload.
 */

const account = (ctx: AppContext) => principal(ctx, 'account');
const formOf = (ctx: AppContext) => ctx.state.form ?? {};

/** The user's own key with this id; another account's key, or none, is 404 (never a hint that it exists). */
async function ownKey(ctx: AppContext) {
  const keyId = ops.rowIdFrom(ctx.params.id, 'key');
  const row = await ctx.services.db
    .selectFrom('api_keys')
    .select(['id', 'status'])
    .where('id', '=', keyId)
    .where('user_id', '=', account(ctx).user.id)
    .executeTakeFirst();
  if (!row) throw new ApiError('not_found', `no key with id ${ctx.params.id}`);
  return { id: Number(row.id), status: row.status };
}

export async function showKeys(ctx: AppContext, error?: string, status = 200): Promise<void> {
  const { user, session } = account(ctx);
  const [keys, flash] = await Promise.all([ops.listUserKeys(ctx.services, user.id), takeFlash(ctx, session, status === 200)]);
  const live = keys.filter((k) => k.status !== 'revoked').reverse();
  const revoked = keys.filter((k) => k.status === 'revoked').reverse();
  render(
    ctx,
    'keys.njk',
    {
      title: 'API keys',
      keys: live,
      revoked,
      newKey: flash.newKey,
      notice: flash.notice,
      error,
      values: status === 200 ? {} : formOf(ctx),
    },
    status,
  );
}

/** A form failure (400 naming the field) is shown on the page with what was typed; anything else is thrown. */
async function orShowError(ctx: AppContext, work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (err) {
    if (err instanceof ApiError && err.status === 400) return showKeys(ctx, err.message, 400);
    throw err;
  }
}

export async function createKey(ctx: AppContext): Promise<void> {
  const form = formOf(ctx);
  await orShowError(ctx, async () => {
    const input = validate(keyBody, {
      name: noControlChars('name', form.name) ?? '',
      rpm_limit: integer(form.rpm_limit),
      balance_cap_usd: orNull(form.balance_cap_usd),
      expires_at: endOfDay(form.expires_at),
      allowed_models: modelList(form.allowed_models),
      max_concurrent_requests: limitOrNull(form.max_concurrent_requests),
    });
    if (input.expires_at && input.expires_at.getTime() <= Date.now())
      throw new ApiError('bad_request', 'expires_at: must be in the future', { param: 'expires_at' });
    const { user, session } = account(ctx);
    const created = await ops.createKey(ctx.services, user.id, input);
    await setFlash(ctx, session, {
      newKey: created.key,
      notice: `Key ${created.prefix}… created. Copy it now: it is shown only this once.`,
    });
    redirect(ctx, '/keys');
  });
}

/** Edits a key's RPM, cap, model list and concurrency (an empty cap, list or limit removes it). */
export async function updateKey(ctx: AppContext): Promise<void> {
  const form = formOf(ctx);
  const key = await ownKey(ctx);
  if (key.status === 'revoked') throw new ApiError('not_found', `no live key with id ${key.id}`);
  await orShowError(ctx, async () => {
    const patch = validate(keyPatch, {
      rpm_limit: integer(form.rpm_limit),
      balance_cap_usd: orNull(form.balance_cap_usd),
      allowed_models: modelList(form.allowed_models),
      max_concurrent_requests: limitOrNull(form.max_concurrent_requests),
    });
    const updated = await ops.updateKey(ctx.services, key.id, patch);
    await setFlash(ctx, account(ctx).session, {
      notice: `Key ${updated.prefix}… updated: ${updated.rpm_limit} requests/min, cap ${updated.balance_cap_usd === null ? 'none' : `$${updated.balance_cap_usd}`}, ${updated.max_concurrent_requests ?? 'any number of'} requests at once, ${updated.allowed_models === null ? 'every model' : `models ${updated.allowed_models.join(', ') || '(none)'}`}.`,
    });
    redirect(ctx, '/keys');
  });
}

/** The confirmation page (a form: revoking works without JavaScript). */
export async function confirmRevoke(ctx: AppContext): Promise<void> {
  const key = await ownKey(ctx);
  const shown = await ops.getKey(ctx.services, key.id);
  render(ctx, 'key-revoke.njk', { title: 'Revoke key', key: shown });
}

export async function revokeKey(ctx: AppContext): Promise<void> {
  const key = await ownKey(ctx);
  const revoked = await ops.revokeKey(ctx.services, key.id);
  await setFlash(ctx, account(ctx).session, { notice: `Key ${revoked.prefix}… revoked: its next request is refused.` });
  redirect(ctx, '/keys');
}
