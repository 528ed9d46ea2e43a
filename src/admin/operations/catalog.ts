import { sql } from 'kysely';
import { byRouteOrder, Catalog } from '../../catalog/catalog.js';
import type { Db } from '../../db/index.js';
import { describeIssue } from '../../http/body.js';
import { ApiError, badRequest } from '../../http/errors.js';
import { clearCooldown, readChannelHealth } from '../../upstream/health.js';
import { secretHint } from '../../upstream/secrets.js';
import { presentChannel, presentModel, presentRoute, presentToken } from '../present.js';
import { type ChannelInput, type ModelInput, modelBody, modelId, type RouteInput, type TokenInput, type TokenPatch } from '../schemas.js';
import { type AdminDeps, announcedAround, notFound } from './common.js';

// Channels, their upstream tokens, and models.

/** A catalog change, announced around its MySQL write. */
const changeCatalog = <T>(deps: AdminDeps, write: () => Promise<T>): Promise<T> =>
  announcedAround(() => Catalog.changed(deps.redis, deps.keys), write);

async function channelRow(db: Db, id: number) {
  return db.selectFrom('channels').selectAll().where('id', '=', id).executeTakeFirst();
}

async function tokenRow(db: Db, id: number) {
  return db.selectFrom('upstream_tokens').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function createChannel(deps: AdminDeps, input: ChannelInput) {
  const result = await changeCatalog(deps, () => deps.db.insertInto('channels').values(input).executeTakeFirstOrThrow());
  return presentChannel((await channelRow(deps.db, Number(result.insertId)))!);
}

/** Every channel with its tokens (never their secrets). */
export async function listChannels(deps: AdminDeps) {
  const [channels, tokens] = await Promise.all([
    deps.db.selectFrom('channels').selectAll().orderBy('id').execute(),
    deps.db.selectFrom('upstream_tokens').selectAll().orderBy('id').execute(),
  ]);
  return channels.map((channel) => ({
    ...presentChannel(channel),
    tokens: tokens.filter((t) => Number(t.channel_id) === Number(channel.id)).map(presentToken),
  }));
}

export async function addToken(deps: AdminDeps, channelId: number, input: TokenInput) {
  if (!(await channelRow(deps.db, channelId))) throw notFound('channel', channelId);
  const token = {
    channel_id: channelId,
    name: input.name,
    secret_enc: deps.secrets.seal(input.secret),
    secret_hint: secretHint(input.secret),
    max_concurrency: input.max_concurrency,
    status: 'active' as const,
  };
  const result = await changeCatalog(deps, () => deps.db.insertInto('upstream_tokens').values(token).executeTakeFirstOrThrow());
  return presentToken((await tokenRow(deps.db, Number(result.insertId)))!);
}

export async function updateToken(deps: AdminDeps, tokenId: number, patch: TokenPatch) {
  if (!(await tokenRow(deps.db, tokenId))) throw notFound('token', tokenId);
  const changes = {
    ...(patch.max_concurrency !== undefined && { max_concurrency: patch.max_concurrency }),
    ...(patch.status !== undefined && {
      status: patch.status,
      disabled_reason: patch.status === 'disabled' ? 'disabled by an operator' : null,
    }),
  };
  if (Object.keys(changes).length > 0) {
    await changeCatalog(deps, async () => {
      await deps.db.updateTable('upstream_tokens').set(changes).where('id', '=', tokenId).execute();
      // re-enabling means "try it again now", whatever cooldown the token was in
      if (patch.status === 'active') await clearCooldown(deps.redis, deps.keys, tokenId);
    });
  }
  return presentToken((await tokenRow(deps.db, tokenId))!);
}

// ---- models

/**
 * Models with their routes in trying order, each route with its channel's live state (healthy, cooling,
 * unhealthy, disabled; read from Redis). `only`: just that model.
 */
async function presentModels(deps: AdminDeps, only?: string) {
  let models = deps.db.selectFrom('models').selectAll().orderBy('id');
  let routes = deps.db.selectFrom('model_routes').selectAll();
  if (only !== undefined) {
    models = models.where('id', '=', only);
    routes = routes.where('model_id', '=', only);
  }
  const [modelRows, routeRows, tokenRows] = await Promise.all([
    models.execute(),
    routes.execute(),
    deps.db.selectFrom('upstream_tokens').select(['id', 'channel_id', 'status']).execute(),
  ]);
  const channelIds = [...new Set(routeRows.map((r) => Number(r.channel_id)))];
  const health = await readChannelHealth(
    deps.redis,
    deps.keys,
    channelIds.map((id) => ({
      id,
      tokens: tokenRows.filter((t) => Number(t.channel_id) === id).map((t) => ({ id: Number(t.id), status: t.status })),
    })),
  );
  return modelRows.map((row) =>
    presentModel(
      row,
      routeRows
        .filter((r) => r.model_id === row.id)
        .sort(byRouteOrder)
        .map((r) => presentRoute(r, health.get(Number(r.channel_id)))),
    ),
  );
}

export async function listModels(deps: AdminDeps) {
  return presentModels(deps);
}

/** The routes' channels must exist: 400 naming the field otherwise. */
async function checkChannels(db: Db, routes: RouteInput[], routesGiven: boolean): Promise<void> {
  const ids = [...new Set(routes.map((r) => r.channel_id))];
  const found = new Set((await db.selectFrom('channels').select('id').where('id', 'in', ids).execute()).map((c) => Number(c.id)));
  const missing = routes.findIndex((r) => !found.has(r.channel_id));
  if (missing < 0) return;
  const field = routesGiven ? `routes.${missing}.channel_id` : 'channel_id';
  throw badRequest(`${field}: no channel with id ${routes[missing].channel_id}`, field);
}

/** Inserts or replaces the model `id` and its routes (a PUT: omitted optional fields take their defaults). */
export async function putModel(deps: AdminDeps, id: string, input: ModelInput) {
  const checkedId = modelId.safeParse(id);
  if (!checkedId.success) throw badRequest(`model id ${JSON.stringify(id)}: ${describeIssue(checkedId.error).replace(/^body: /, '')}`);
  await checkChannels(deps.db, input.routes, input.routesGiven);
  await changeCatalog(deps, () => writeModel(deps.db, id, input));
  return (await presentModels(deps, id))[0];
}

/** The `models` row of a model body. */
function modelFields(input: ModelInput) {
  return {
    display_name: input.display_name,
    owned_by: input.owned_by,
    modality: input.modality,
    status: input.status,
    input_micro: input.input_price_per_1m,
    output_micro: input.output_price_per_1m,
    cache_read_micro: input.cache_read_price_per_1m,
    cache_write_micro: input.cache_write_price_per_1m,
    image_nano: input.price_per_image,
    max_output_tokens: input.max_output_tokens,
    vision: input.vision ? 1 : 0,
    tools: input.tools ? 1 : 0,
    sizes: JSON.stringify(input.sizes),
  };
}

async function writeModel(db: Db, id: string, input: ModelInput): Promise<void> {
  const fields = modelFields(input);
  await db.transaction().execute(async (trx) => {
    await trx
      .insertInto('models')
      .values({ id, ...fields })
      .onDuplicateKeyUpdate({ ...fields, updated_at: sql<Date>`CURRENT_TIMESTAMP(3)` })
      .execute();
    await trx.deleteFrom('model_routes').where('model_id', '=', id).execute();
    await trx
      .insertInto('model_routes')
      .values(
        input.routes.map((r, position) => ({
          model_id: id,
          channel_id: r.channel_id,
          upstream_model: r.upstream_model,
          priority: r.priority,
          weight: r.weight,
          position,
        })),
      )
      .execute();
  });
}

/** Replaces only the routes of an existing model (the CLI's `set-routes`); the rest stays as it is. */
export async function setModelRoutes(deps: AdminDeps, id: string, routes: unknown) {
  const [existing] = await presentModels(deps, id);
  if (!existing) throw new ApiError('not_found', `no model with id ${id}`);
  const { channel_id: _c, upstream_model: _u, routes: _r, created_at: _a, updated_at: _b, id: _i, ...rest } = existing;
  const parsed = modelBody.safeParse({ ...rest, routes });
  if (!parsed.success) throw badRequest(describeIssue(parsed.error));
  return putModel(deps, id, parsed.data);
}
