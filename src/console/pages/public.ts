import { formatPricePerMillion, formatUsd } from '../../billing/money.js';
import type { Model } from '../../catalog/catalog.js';
import { ERRORS } from '../../http/errors.js';
import type { AppContext } from '../../http/state.js';
import { baseUrlOf, render } from '../views.js';

/** Public pages: what eastx is, the live price list, and the API docs with this deployment's own URL. */

/** The catalog as customers see it: active models, then the ones coming soon; disabled ones never. */
async function publicModels(ctx: AppContext) {
  const catalog = await ctx.services.catalog.current();
  const order = { active: 0, coming_soon: 1, disabled: 2 } as const;
  return [...catalog.models.values()]
    .filter((m) => m.status !== 'disabled')
    .sort((a, b) => order[a.status] - order[b.status] || a.modality.localeCompare(b.modality) || a.id.localeCompare(b.id))
    .map((m: Model) => ({
      id: m.id,
      name: m.displayName,
      ownedBy: m.ownedBy,
      modality: m.modality,
      status: m.status,
      input: m.modality === 'image' ? null : formatPricePerMillion(m.prices.inputMicro),
      output: m.modality === 'chat' ? formatPricePerMillion(m.prices.outputMicro) : null,
      image: m.modality === 'image' ? formatUsd(m.prices.imageNano) : null,
      maxOutput: m.modality === 'chat' ? m.maxOutputTokens : null,
      vision: m.vision,
      tools: m.tools,
      sizes: m.modality === 'image' ? m.sizes : [],
    }));
}

export async function home(ctx: AppContext): Promise<void> {
  const models = await publicModels(ctx);
  render(ctx, 'home.njk', {
    title: 'OpenAI-compatible LLM gateway',
    baseUrl: baseUrlOf(ctx),
    models: models.filter((m) => m.status === 'active').slice(0, 6),
  });
}

export async function pricing(ctx: AppContext): Promise<void> {
  render(ctx, 'pricing.njk', { title: 'Pricing', models: await publicModels(ctx) });
}

const errorTable = Object.entries(ERRORS).map(([code, { status, type }]) => ({ code, status, type }));

export async function docs(ctx: AppContext): Promise<void> {
  const models = (await publicModels(ctx)).filter((m) => m.status === 'active');
  const example = (modality: string, fallback: string) => models.find((m) => m.modality === modality)?.id ?? fallback;
  render(ctx, 'docs.njk', {
    title: 'API docs',
    baseUrl: baseUrlOf(ctx),
    origin: `${ctx.protocol}://${ctx.host}`,
    models,
    chatModel: example('chat', 'gpt-4o-mini'),
    embeddingModel: example('embedding', 'text-embedding-3-small'),
    imageModel: example('image', 'wanx-v1'),
    errors: errorTable,
  });
}
