import { z } from 'zod';
import { badRequest } from '../http/errors.js';
import type { AppContext } from '../http/state.js';
import type { ImagesJobData } from '../queue/jobs.js';
import { admitted, enqueue, type FrontDoor, jobBase } from './admission.js';
import { respondWithResult } from './relay-response.js';

/** Every image model serves this size (the admin API enforces it); OpenAI's `auto` means it too. */
export const DEFAULT_IMAGE_SIZE = '1024x1024';

/** OpenAI's image generation request; fields DashScope has no use for (quality, style, user…) are ignored. */
export const imagesRequestSchema = z.looseObject({
  model: z.string().min(1),
  prompt: z.string().refine((p) => p.trim() !== '', 'must not be empty'),
  n: z.number().int('must be an integer from 1 to 4').min(1, 'must be from 1 to 4').max(4, 'must be from 1 to 4').nullish(),
  size: z
    .string()
    .regex(/^(auto|[1-9]\d*x[1-9]\d*)$/, 'must be WIDTHxHEIGHT, e.g. 1024x1024')
    .nullish(),
  response_format: z.enum(['url', 'b64_json'], { error: 'must be "url" or "b64_json"' }).nullish(),
  /** DashScope's own extra: what the image should not show. */
  negative_prompt: z.string().nullish(),
});

type ImagesRequest = z.infer<typeof imagesRequestSchema>;

const sizeOf = (body: ImagesRequest) => (!body.size || body.size === 'auto' ? DEFAULT_IMAGE_SIZE : body.size);

export const imagesDoor: FrontDoor<ImagesRequest> = {
  endpoint: '/v1/images/generations',
  modality: 'image',
  schema: imagesRequestSchema,
  demand(body, model) {
    if (!model.sizes.includes(sizeOf(body)))
      throw badRequest(`size: model ${model.id} serves ${model.sizes.join(', ')}; got ${sizeOf(body)}`);
    return { kind: 'images' };
  },
  worstCase: (body) => ({ promptTokens: 0, requestedOutput: 0, images: body.n ?? 1 }),
};

/** POST /v1/images/generations, after admission. */
export async function createImages(ctx: AppContext): Promise<void> {
  const { body } = admitted<ImagesRequest>(ctx);
  const job: ImagesJobData = {
    ...jobBase(ctx, 'images'),
    kind: 'images',
    prompt: body.prompt,
    n: body.n ?? 1,
    size: sizeOf(body),
    extra: body.negative_prompt ? { negative_prompt: body.negative_prompt } : {},
    responseFormat: body.response_format ?? 'url',
  };

  const relay = await enqueue(ctx, job);
  await respondWithResult(ctx, relay, job);
}
