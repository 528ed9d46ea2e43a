import { z } from 'zod';
import { UpstreamError } from '../../errors.js';
import { jsonObject, tokenCount } from '../shapes.js';
import type { ImagesResult } from '../types.js';

export interface TaskResult {
  url?: string;
  actual_prompt?: string;
  code?: string;
  message?: string;
}

/** DashScope's task answer, for both the submit and the status poll. */
export interface TaskResponse {
  output?: { task_id?: string; task_status?: string; code?: string; message?: string; results?: TaskResult[] };
  usage?: { image_count?: number };
}

/** What the gateway relies on in a task answer (../shapes.ts); an image count that is not a count is ignored. */
export const taskResponse = z.looseObject({
  output: z
    .looseObject({
      task_id: z.string().optional(),
      task_status: z.string().optional(),
      code: z.string().optional(),
      message: z.string().optional(),
      results: z.array(jsonObject).optional(),
    })
    .optional(),
  usage: z.looseObject({ image_count: tokenCount.optional() }).optional().catch(undefined),
});

/** A SUCCEEDED task → image URLs, revised prompts and the images produced (what is billed). */
export function imagesOf(task: TaskResponse): ImagesResult {
  const results = task.output?.results ?? [];
  const data = results
    .filter((r): r is TaskResult & { url: string } => typeof r.url === 'string' && r.url !== '')
    .map((r) => ({ url: r.url, ...(r.actual_prompt ? { revised_prompt: r.actual_prompt } : {}) }));
  if (data.length === 0) {
    const failed = results.find((r) => r.code);
    throw new UpstreamError('task_failed', failed?.message || 'the image task produced no image', {
      providerCode: failed?.code || 'NoImage',
    });
  }
  return { data, imagesProduced: task.usage?.image_count ?? data.length };
}
