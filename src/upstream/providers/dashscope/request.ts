import type { ImageRequest, Json } from '../types.js';

/** The text-to-image task body (SPEC §4: size `1024x1024` is sent as `1024*1024`). */
export function imageTaskRequest(request: ImageRequest, upstreamModel: string): Json {
  const negative = request.extra.negative_prompt;
  return {
    model: upstreamModel,
    input: { prompt: request.prompt, ...(typeof negative === 'string' ? { negative_prompt: negative } : {}) },
    parameters: { size: request.size.replace('x', '*'), n: request.n },
  };
}
