import { allowsModel } from '../accounts/allowed-models.js';
import { pricePerMillionUsd, usdNumber } from '../billing/money.js';
import type { Model } from '../catalog/catalog.js';
import { confirmCustomer } from '../http/guards.js';
import { type AppContext, type AppMiddleware, principal } from '../http/state.js';
import { findModel } from './admission.js';

/** OpenAI's model object plus eastx's display name, prices (USD JSON numbers; chat models their cache prices too) and modality. */
export function modelEntry(model: Model): Record<string, unknown> {
  const entry: Record<string, unknown> = {
    id: model.id,
    object: 'model',
    created: model.created,
    owned_by: model.ownedBy,
    display_name: model.displayName,
    modality: model.modality,
    input_price_per_1m: pricePerMillionUsd(model.prices.inputMicro),
    output_price_per_1m: pricePerMillionUsd(model.prices.outputMicro),
  };
  if (model.modality === 'chat') {
    const { inputMicro, cacheReadMicro, cacheWriteMicro } = model.prices;
    Object.assign(entry, {
      cache_read_price_per_1m: pricePerMillionUsd(cacheReadMicro ?? inputMicro),
      cache_write_price_per_1m: pricePerMillionUsd(cacheWriteMicro ?? inputMicro),
      vision: model.vision,
      tools: model.tools,
      max_output_tokens: model.maxOutputTokens,
    });
  }
  if (model.modality === 'image') Object.assign(entry, { price_per_image: usdNumber(model.prices.imageNano), sizes: model.sizes });
  return entry;
}

/** GET /v1/models (after the RPM step): the active catalog, as far as the key may use it. */
export async function listModels(ctx: AppContext): Promise<void> {
  const { catalogVersion, key } = principal(ctx, 'customer');
  const catalog = await ctx.services.catalog.at(catalogVersion);
  const data = [...catalog.models.values()]
    .filter((m) => m.status === 'active' && m.routes.length > 0 && allowsModel(key.allowedModels, m.id))
    .sort((a, b) => a.id.localeCompare(b.id))
    .map(modelEntry);
  ctx.body = { object: 'list', data };
}

/** The model step of GET /v1/models/{id}: the id comes from the path (a `*id` wildcard may hold `/`). */
export const modelFromPath: AppMiddleware = async (ctx, next) => {
  const raw = ctx.params.id as string | string[];
  const id = Array.isArray(raw) ? raw.join('/') : raw;
  const check = async () => void (ctx.state.model = (await findModel(ctx, id, true)).model);
  await confirmCustomer(ctx, { check, countsRpm: true });
  await next();
};

export async function retrieveModel(ctx: AppContext): Promise<void> {
  principal(ctx, 'customer');
  ctx.body = modelEntry(ctx.state.model!);
}
