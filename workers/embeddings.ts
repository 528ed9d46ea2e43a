import type { Job } from 'bullmq';
import { countTextTokens } from '../src/billing/estimate.js';
import { usdNumber } from '../src/billing/money.js';
import { ApiError } from '../src/http/errors.js';
import type { EmbeddingsJobData } from '../src/queue/jobs.js';
import { UpstreamError } from '../src/upstream/errors.js';
import type { WorkerContext } from './context.js';
import { charge, type JobSummary, runJob } from './job-kit.js';
import { withUpstream } from './upstream-call.js';

/** An embedding as the upstream sent it (floats, or base64 little-endian float32 from a provider that ignores the ask) → floats. */
function toFloats(embedding: unknown): number[] {
  if (Array.isArray(embedding) && embedding.every((x) => typeof x === 'number')) return embedding;
  if (typeof embedding === 'string') {
    const bytes = Buffer.from(embedding, 'base64');
    return Array.from({ length: Math.floor(bytes.length / 4) }, (_, i) => bytes.readFloatLE(i * 4));
  }
  throw new UpstreamError('protocol', 'the upstream sent an embedding that is neither floats nor base64', { status: 200 }).toApiError();
}

/** OpenAI's `encoding_format: "base64"`: the vector as little-endian float32 bytes. */
function float32Base64(vector: number[]): string {
  const bytes = Buffer.alloc(vector.length * 4);
  vector.forEach((value, i) => bytes.writeFloatLE(value, i * 4));
  return bytes.toString('base64');
}

/** Input tokens counted by the gateway when the upstream reported no usage (the ledger row is marked estimated). */
function countInputTokens(input: unknown): number {
  const items = Array.isArray(input) && !input.every((x) => typeof x === 'number') ? input : [input];
  return items.reduce<number>(
    (sum, item) => sum + (typeof item === 'string' ? countTextTokens(item) : Array.isArray(item) ? item.length : 0),
    0,
  );
}

/** One embeddings job: lease → adapter (floats) → settle on input tokens → the client's encoding. */
export function processEmbeddings(ctx: WorkerContext, bullJob: Job<EmbeddingsJobData>, signal: AbortSignal): Promise<JobSummary> {
  const job = bullJob.data;
  return runJob(ctx, job, signal, async (relay) => {
    const { response } = await withUpstream(ctx, job, signal, (adapter, call) => {
      if (!adapter.embeddings) throw new ApiError('upstream_unavailable', "this model's upstream channel does not serve embeddings");
      return adapter.embeddings({ ...job.body, model: call.upstreamModel }, call);
    });
    if (!Array.isArray(response?.data))
      throw new UpstreamError('protocol', 'the upstream answered without embeddings', { status: 200 }).toApiError();
    const data = response.data.map((item, i) => {
      const vector = toFloats(item.embedding);
      return { object: 'embedding', index: item.index ?? i, embedding: job.encodingFormat === 'base64' ? float32Base64(vector) : vector };
    });

    const estimated = typeof response.usage?.prompt_tokens !== 'number';
    const promptTokens = estimated ? countInputTokens(job.body.input) : response.usage!.prompt_tokens;
    const cost = await charge(ctx, job, { promptTokens, completionTokens: 0, images: 0 }, estimated);
    const result = {
      object: 'list',
      data,
      model: job.model,
      usage: { prompt_tokens: promptTokens, total_tokens: promptTokens, cost: usdNumber(cost) },
    };
    await relay.send({ t: 'done', costNano: cost.toString(), result });
    return { status: 'ok', promptTokens, completionTokens: 0, costNano: cost.toString(), estimated };
  });
}
