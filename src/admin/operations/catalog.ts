import { sql } from 'kysely';
import { Catalog } from '../../catalog/catalog.js';
import type { Db } from '../../db/index.js';
import { describeIssue } from '../../http/body.js';
import { badRequest } from '../../http/errors.js';
import { secretHint } from '../../upstream/secrets.js';
import { presentChannel, presentModel, presentToken } from '../present.js';
import { type ChannelInput, type ModelInput, modelId, type TokenInput, type TokenPatch } from '../schemas.js';
import { type AdminDeps, notFound } from './common.js';

/** Channels, their upstream tokens, and models. */
async function channelRow(db: Db, id: number) {
  return db.selectFrom('channels').selectAll().where('id', '=', id).executeTakeFirst();
}

async function tokenRow(db: Db, id: number) {
  return db.selectFrom('upstream_tokens').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function createChannel(deps: AdminDeps, input: ChannelInput) {
  const result = await deps.db.insertInto('channels').values(input).executeTakeFirstOrThrow();
  await Catalog.changed(deps.redis, deps.keys);
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
  const result = await deps.db
    .insertInto('upstream_tokens')
    .values({
      channel_id: channelId,
      name: input.name,
      secret_enc: deps.secrets.seal(input.secret),
      secret_hint: secretHint(input.secret),
      max_concurrency: input.max_concurrency,
      status: 'active',
    })
    .executeTakeFirstOrThrow();
  await Catalog.changed(deps.redis, deps.keys);
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
    await deps.db.updateTable('upstream_tokens').set(changes).where('id', '=', tokenId).execute();
    await Catalog.changed(deps.redis, deps.keys);
  }
  return presentToken((await tokenRow(deps.db, tokenId))!);
}

// ---- models

async function modelRow(db: Db, id: string) {
  return db.selectFrom('models').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function listModels(deps: AdminDeps) {
  const rows = await deps.db.selectFrom('models').selectAll().orderBy('id').execute();
  return rows.map(presentModel);
}

/** Inserts or replaces the model `id` (a PUT: omitted optional fields take their defaults). */
export async function putModel(deps: AdminDeps, id: string, input: ModelInput) {
  const checkedId = modelId.safeParse(id);
  if (!checkedId.success) throw badRequest(`model id ${JSON.stringify(id)}: ${describeIssue(checkedId.error).replace(/^body: /, '')}`);
  if (!(await channelRow(deps.db, input.channel_id))) throw badRequest(`channel_id: no channel with id ${input.channel_id}`);
  const fields = {
    display_name: input.display_name,
    owned_by: input.owned_by,
    modality: input.modality,
    status: input.status,
    channel_id: input.channel_id,
    upstream_model: input.upstream_model,
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
  await deps.db
    .insertInto('models')
    .values({ id, ...fields })
    .onDuplicateKeyUpdate({ ...fields, updated_at: sql<Date>`CURRENT_TIMESTAMP(3)` })
    .execute();
  await Catalog.changed(deps.redis, deps.keys);
  return presentModel((await modelRow(deps.db, id))!);
}
