import { z } from 'zod';
import { parseBody } from '../http/body.js';
import { badRequest } from '../http/errors.js';
import type { ImagesJobData } from '../queue/jobs.js';
import type { AppContext } from '../http/state.js';
import { findModel, jobBase, rateLimit, requireModality, reserve, enqueue } from './admission.js';
import { respondWithResult } from './relay-response.js';

/** Every image model serves this size (the admin API enforces it); OpenAI's `auto` means it too. */
export const DEFAULT_IMAGE_SIZE = '1024x1024';

/** OpenAI's image generation request; fields DashScope has no use for (quality, style, user…) are ignored. */
const imagesRequestSchema = z.looseObject({
  model: z.string().min(1),
  prompt: z.string().refine((p) => p.trim() !== '', 'must not be empty'),
  n: z.number().int('must be an integer from 1 to 4').min(1, 'must be from 1 to 4').max(4, 'must be from 1 to 4').nullish(),
  size: z.string().regex(/^(auto|[1-9]\d*x[1-9]\d*)$/, 'must be WIDTHxHEIGHT, e.g. 1024x1024').nullish(),
  response_format: z
    .string()
    .refine((f) => f === 'url', 'only "url" is supported: images come back as URLs (b64_json is not available for these models)')
    .nullish(),
  /** DashScope's own extra: what the image should not show. */
  negative_prompt: z.string().nullish(),
});

export async function createImages(ctx: AppContext): Promise<void> {
  const svc = ctx.services;
  const body = await parseBody(ctx, imagesRequestSchema, svc.config.bodyLimitBytes);
  const model = await findModel(ctx, body.model);
  requireModality(model, 'image', '/v1/images/generations');
  const size = !body.size || body.size === 'auto' ? DEFAULT_IMAGE_SIZE : body.size;
  if (!model.sizes.includes(size)) throw badRequest(`size: model ${model.id} serves ${model.sizes.join(', ')}; got ${size}`);
  await rateLimit(ctx);

  const n = body.n ?? 1;
  const { holdNano } = await reserve(ctx, model, { promptTokens: 0, requestedOutput: 0, images: n });
  const job: ImagesJobData = {
    ...jobBase(ctx, model, holdNano, svc.config.imageDeadlineMs),
    kind: 'images',
    prompt: body.prompt,
    n,
    size,
    extra: body.negative_prompt ? { negative_prompt: body.negative_prompt } : {},
  };

  const relay = await enqueue(svc, job);
  await respondWithResult(ctx, svc, relay, job.deadlineAt);
}
