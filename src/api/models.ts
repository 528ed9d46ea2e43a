import { usdNumber } from '../billing/money.js';
import type { Model } from '../catalog/catalog.js';
import { principal, type AppContext } from '../http/state.js';
import { findModel, rateLimit } from './admission.js';

/** OpenAI's model object plus eastx's display name, prices (USD JSON numbers) and modality. */
export function modelEntry(model: Model): Record<string, unknown> {
  const entry: Record<string, unknown> = {
    id: model.id,
    object: 'model',
    created: model.created,
    owned_by: model.ownedBy,
    display_name: model.displayName,
    modality: model.modality,
    input_price_per_1m: usdNumber(model.prices.inputMicro * 1000n),
    output_price_per_1m: usdNumber(model.prices.outputMicro * 1000n),
  };
  if (model.modality === 'chat') Object.assign(entry, { vision: model.vision, tools: model.tools, max_output_tokens: model.maxOutputTokens });
  if (model.modality === 'image') Object.assign(entry, { price_per_image: usdNumber(model.prices.imageNano), sizes: model.sizes });
  return entry;
}

export async function listModels(ctx: AppContext): Promise<void> {
  await rateLimit(ctx);
  const catalog = await ctx.services.catalog.at(principal(ctx, 'customer').catalogVersion);
  const data = [...catalog.models.values()]
    .filter((m) => m.status === 'active')
    .sort((a, b) => a.id.localeCompare(b.id))
    .map(modelEntry);
  ctx.body = { object: 'list', data };
}

export async function retrieveModel(ctx: AppContext): Promise<void> {
  const raw = ctx.params.id as string | string[];
  const model = await findModel(ctx, Array.isArray(raw) ? raw.join('/') : raw);
  await rateLimit(ctx);
  ctx.body = modelEntry(model);
}
