import { z } from 'zod';
import * as ops from '../../admin/operations/index.js';
import { channelBody, MAX_ROUTES, modelBody, modelId, tokenBody, tokenPatch } from '../../admin/schemas.js';
import { ApiError } from '../../http/errors.js';
import { type AppContext, principal } from '../../http/state.js';
import { checkbox, integer, noControlChars, optional, orNull, validate } from '../form-input.js';
import { setFlash, takeFlash } from '../sessions.js';
import { redirect, render } from '../views.js';

/**
 * Channels, their upstream tokens (secret write-only; live leases and cooldowns read from Redis) and models
 * with prices: the same operations as the admin API.
 */

const operator = (ctx: AppContext) => principal(ctx, 'operator-session');
const formOf = (ctx: AppContext) => ctx.state.form ?? {};

/** A form failure (400) is shown on `page`; anything else is thrown. */
async function orShow(ctx: AppContext, page: (ctx: AppContext, error: string) => Promise<void>, work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (err) {
    if (err instanceof ApiError && err.status === 400) return page(ctx, err.message);
    throw err;
  }
}

/** In-flight leases and cooldown of each token, as every worker sees them (Redis). */
async function liveState(ctx: AppContext, tokenIds: number[]) {
  const { redis, keys } = ctx.services;
  const now = Date.now();
  const pipeline = redis.pipeline();
  for (const id of tokenIds) pipeline.zcount(keys.leases(id), now, '+inf').pttl(keys.cooldown(id));
  const results = (await pipeline.exec()) ?? [];
  return new Map(
    tokenIds.map((id, i) => {
      const leases = Number(results[2 * i]?.[1] ?? 0);
      const coolMs = Number(results[2 * i + 1]?.[1] ?? -2);
      return [id, { inFlight: leases, coolingUntil: coolMs > 0 ? new Date(now + coolMs).toISOString() : null }];
    }),
  );
}

export async function showChannels(ctx: AppContext, error?: string, status = 200): Promise<void> {
  const { session } = operator(ctx);
  const [channels, flash] = await Promise.all([ops.listChannels(ctx.services), takeFlash(ctx, session, status === 200)]);
  const live = await liveState(
    ctx,
    channels.flatMap((c) => c.tokens.map((t) => t.id)),
  );
  render(
    ctx,
    'admin/channels.njk',
    {
      title: 'Channels and tokens',
      channels: channels.map((c) => ({ ...c, tokens: c.tokens.map((t) => ({ ...t, ...live.get(t.id) })) })),
      notice: flash.notice,
      error,
      values: status === 200 ? {} : formOf(ctx),
    },
    status,
  );
}

const showChannelsError = (ctx: AppContext, error: string) => showChannels(ctx, error, 400);

export async function createChannel(ctx: AppContext): Promise<void> {
  const form = formOf(ctx);
  await orShow(ctx, showChannelsError, async () => {
    const channel = await ops.createChannel(
      ctx.services,
      validate(channelBody, { name: noControlChars('name', form.name) ?? '', type: form.type ?? '', base_url: form.base_url ?? '' }),
    );
    await setFlash(ctx, operator(ctx).session, { notice: `Channel ${channel.name} created: add a token to it.` });
    redirect(ctx, '/admin/channels');
  });
}

export async function addToken(ctx: AppContext): Promise<void> {
  const form = formOf(ctx);
  const channelId = ops.rowIdFrom(ctx.params.id, 'channel');
  await orShow(ctx, showChannelsError, async () => {
    const input = validate(tokenBody, {
      secret: form.secret ?? '',
      max_concurrency: integer(form.max_concurrency),
      name: noControlChars('name', form.name) ?? '',
    });
    const token = await ops.addToken(ctx.services, channelId, input);
    await setFlash(ctx, operator(ctx).session, { notice: `Token ${token.name || token.id} (${token.secret_hint}) added.` });
    redirect(ctx, '/admin/channels');
  });
}

/** Status (re-enable a disabled token) and max concurrency. */
export async function updateToken(ctx: AppContext): Promise<void> {
  const form = formOf(ctx);
  const tokenId = ops.rowIdFrom(ctx.params.id, 'token');
  await orShow(ctx, showChannelsError, async () => {
    const token = await ops.updateToken(
      ctx.services,
      tokenId,
      validate(tokenPatch, { status: optional(form.status), max_concurrency: integer(form.max_concurrency) }),
    );
    await setFlash(ctx, operator(ctx).session, {
      notice: `Token ${token.name || token.id}: ${token.status}, at most ${token.max_concurrency} at once.`,
    });
    redirect(ctx, '/admin/channels');
  });
}

export async function showModels(ctx: AppContext): Promise<void> {
  const { session } = operator(ctx);
  const [models, channels, flash] = await Promise.all([
    ops.listModels(ctx.services),
    ops.listChannels(ctx.services),
    takeFlash(ctx, session),
  ]);
  const channelNames = Object.fromEntries(channels.map((c) => [c.id, `${c.name} #${c.id}`]));
  render(ctx, 'admin/models.njk', { title: 'Models and prices', models, channelNames, notice: flash.notice });
}

const editQuery = z.object({ id: z.string().max(191).optional() });

/** Blank route rows the form offers for adding routes. */
const SPARE_ROUTE_ROWS = 2;

interface RouteRow {
  channel_id: string | number;
  upstream_model: string;
  priority: string | number;
  weight: string | number;
}

const blankRoute = (): RouteRow => ({ channel_id: '', upstream_model: '', priority: 0, weight: 1 });

/** The route rows to show: the given ones plus blank ones to add, at most MAX_ROUTES. */
const withSpareRows = (routes: RouteRow[]) =>
  [...routes, ...Array.from({ length: SPARE_ROUTE_ROWS }, blankRoute)].slice(0, Math.max(routes.length, MAX_ROUTES));

/** The form's route rows (`routes[i][channel_id]`, …) as typed; rows left entirely blank are dropped. */
function routeRowsOf(form: Record<string, string>): RouteRow[] {
  const rows: RouteRow[] = [];
  for (let i = 0; i < MAX_ROUTES; i++) {
    const field = (name: string) => form[`routes[${i}][${name}]`] ?? '';
    const row = {
      channel_id: field('channel_id'),
      upstream_model: field('upstream_model'),
      priority: field('priority'),
      weight: field('weight'),
    };
    if (row.channel_id.trim() === '' && row.upstream_model.trim() === '') continue;
    rows.push(row);
  }
  return rows;
}

/** Cache prices equal to the input price are its default: shown blank, so saving keeps them following it. */
const cachePricesShown = (model: { input_price_per_1m: string; cache_read_price_per_1m: string; cache_write_price_per_1m: string }) => ({
  cache_read_price_per_1m: model.cache_read_price_per_1m === model.input_price_per_1m ? '' : model.cache_read_price_per_1m,
  cache_write_price_per_1m: model.cache_write_price_per_1m === model.input_price_per_1m ? '' : model.cache_write_price_per_1m,
});

/** The form for one model: `?id=` edits it, no id starts a new one. */
export async function editModel(ctx: AppContext, error?: string, status = 200): Promise<void> {
  operator(ctx);
  const wanted = status === 200 ? editQuery.safeParse(ctx.query).data?.id : undefined;
  const [models, channels] = await Promise.all([ops.listModels(ctx.services), ops.listChannels(ctx.services)]);
  const existing = wanted === undefined ? undefined : models.find((m) => m.id === wanted);
  if (wanted !== undefined && !existing) throw new ApiError('not_found', `no model with id ${wanted}`);
  const values =
    status === 200
      ? existing
        ? { ...existing, ...cachePricesShown(existing), sizes: existing.sizes.join(', '), routes: withSpareRows(existing.routes) }
        : { status: 'active', modality: 'chat', max_output_tokens: 4096, sizes: '1024x1024', routes: withSpareRows([]) }
      : {
          ...formOf(ctx),
          vision: formOf(ctx).vision !== undefined,
          tools: formOf(ctx).tools !== undefined,
          routes: withSpareRows(routeRowsOf(formOf(ctx))),
        };
  render(
    ctx,
    'admin/model-edit.njk',
    { title: existing ? `Model ${existing.id}` : 'New model', editing: Boolean(existing), values, channels, error },
    status,
  );
}

/** Creates or replaces a model with its routes (the admin API's PUT, field for field). */
export async function saveModel(ctx: AppContext): Promise<void> {
  const form = formOf(ctx);
  await orShow(
    ctx,
    (c, e) => editModel(c, e, 400),
    async () => {
      const { id } = validate(z.object({ id: modelId }), { id: (form.id ?? '').trim() });
      const input = validate(modelBody, {
        display_name: noControlChars('display_name', form.display_name) ?? '',
        owned_by: noControlChars('owned_by', form.owned_by) ?? '',
        modality: form.modality ?? '',
        status: form.status ?? '',
        routes: routeRowsOf(form).map((r, i) => ({
          channel_id: integer(String(r.channel_id)) ?? '',
          upstream_model: noControlChars(`routes.${i}.upstream_model`, r.upstream_model) ?? '',
          priority: integer(String(r.priority)),
          weight: integer(String(r.weight)),
        })),
        input_price_per_1m: optional(form.input_price_per_1m),
        output_price_per_1m: optional(form.output_price_per_1m),
        cache_read_price_per_1m: orNull(form.cache_read_price_per_1m),
        cache_write_price_per_1m: orNull(form.cache_write_price_per_1m),
        price_per_image: optional(form.price_per_image),
        max_output_tokens: integer(form.max_output_tokens),
        vision: checkbox(form.vision),
        tools: checkbox(form.tools),
        sizes: optional(form.sizes)
          ?.split(',')
          .map((s) => s.trim())
          .filter(Boolean),
      });
      const model = await ops.putModel(ctx.services, id, input);
      await setFlash(ctx, operator(ctx).session, { notice: `Model ${model.id} saved (${model.status}).` });
      redirect(ctx, '/admin/models');
    },
  );
}
