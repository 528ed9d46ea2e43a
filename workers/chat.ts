import type { Job } from 'bullmq';
import { countTextTokens, estimateChatPromptTokens } from '../src/billing/estimate.js';
import { usdNumber, type Prices, type Usage } from '../src/billing/money.js';
import { settle, releaseHold } from '../src/billing/settlement.js';
import { ApiError } from '../src/http/errors.js';
import type { ChatJobData, JobBase, JobPrices } from '../src/queue/jobs.js';
import { RelayPublisher } from '../src/queue/relay.js';
import type { ChatChunk, TokenUsage } from '../src/upstream/providers/types.js';
import type { WorkerContext } from './context.js';
import { withUpstream } from './upstream-call.js';

/** A relay nobody has listened to for this long means the web process that owned the request is gone. */
const LISTENER_GONE_MS = 3_000;

export const toPrices = (p: JobPrices): Prices => ({
  inputMicro: BigInt(p.inputMicro),
  outputMicro: BigInt(p.outputMicro),
  imageNano: BigInt(p.imageNano),
});

export function asApiError(err: unknown, signal: AbortSignal): ApiError {
  if (err instanceof ApiError) return err;
  if (signal.aborted) {
    const timedOut = (signal.reason as { failure?: string } | undefined)?.failure === 'timeout';
    return timedOut
      ? new ApiError('upstream_timeout', 'the upstream did not answer before the deadline')
      : new ApiError('upstream_error', 'the request was cancelled', { fields: { upstream_status: 0 } });
  }
  return new ApiError('internal_error', 'the worker failed while processing the request');
}

export interface JobSummary {
  status: 'ok' | 'failed';
  promptTokens?: number;
  completionTokens?: number;
  costNano?: string;
  estimated?: boolean;
}

/** Settles the job's cost (or releases its hold) and returns the charged amount. */
async function charge(ctx: WorkerContext, job: JobBase, usage: Usage, estimated: boolean): Promise<bigint> {
  const outcome = await settle(ctx.db, {
    requestId: job.requestId,
    userId: job.userId,
    keyId: job.keyId,
    model: job.model,
    prices: toPrices(job.prices),
    usage,
    holdNano: BigInt(job.holdNano),
    estimated,
  });
  return outcome.costNano;
}

const fromTokenUsage = (usage: TokenUsage): Usage => ({
  promptTokens: usage.prompt_tokens ?? 0,
  completionTokens: usage.completion_tokens ?? 0,
  images: 0,
});

/** Usage counted by the gateway itself when the upstream gave none (the ledger row is marked estimated). */
function estimatedUsage(job: ChatJobData, producedText: string): Usage {
  return {
    promptTokens: estimateChatPromptTokens(job.body as { messages: unknown[] }),
    completionTokens: countTextTokens(producedText),
    images: 0,
  };
}

/** Text and tool-call argument fragments of a chunk, for counting what was produced. */
function producedTextOf(chunk: ChatChunk): string {
  let text = '';
  for (const choice of chunk.choices ?? []) {
    const delta = choice.delta as { content?: string | null; tool_calls?: Array<{ function?: { name?: string; arguments?: string } }> } | undefined;
    text += delta?.content ?? '';
    for (const call of delta?.tool_calls ?? []) text += (call.function?.name ?? '') + (call.function?.arguments ?? '');
  }
  return text;
}

async function completeChat(ctx: WorkerContext, job: ChatJobData, relay: RelayPublisher, signal: AbortSignal): Promise<JobSummary> {
  const response = await withUpstream(ctx, job, signal, (adapter, call) => adapter.chat({ ...job.body, model: call.upstreamModel }, call));
  const estimated = !response.usage;
  const usage = response.usage ? fromTokenUsage(response.usage) : estimatedUsage(job, JSON.stringify(response.choices ?? ''));
  const cost = await charge(ctx, job, usage, estimated);
  response.model = job.model;
  response.usage = {
    ...(response.usage ?? { prompt_tokens: usage.promptTokens, completion_tokens: usage.completionTokens, total_tokens: usage.promptTokens + usage.completionTokens }),
    cost: usdNumber(cost),
  };
  await relay.send({ t: 'done', costNano: cost.toString(), result: response });
  return { status: 'ok', promptTokens: usage.promptTokens, completionTokens: usage.completionTokens, costNano: cost.toString(), estimated };
}

async function streamChat(
  ctx: WorkerContext,
  job: ChatJobData,
  relay: RelayPublisher,
  signal: AbortSignal,
  abort: (reason: unknown) => void,
): Promise<JobSummary> {
  let sent = 0;
  let produced = '';
  let upstreamUsage: TokenUsage | undefined;
  let lastChunk: ChatChunk | undefined;
  let silentSince: number | undefined;

  const forward = async (chunk: ChatChunk) => {
    chunk.model = job.model;
    if (chunk.usage) upstreamUsage = chunk.usage;
    if (!chunk.choices || chunk.choices.length === 0) return;
    delete chunk.usage;
    lastChunk = chunk;
    produced += producedTextOf(chunk);
    const listeners = await relay.send({ t: 'chunk', chunk });
    sent++;
    if (listeners > 0) silentSince = undefined;
    else if (silentSince === undefined) silentSince = Date.now();
    else if (Date.now() - silentSince > LISTENER_GONE_MS) abort({ failure: 'cancelled' });
  };

  try {
    await withUpstream(ctx, job, signal, async (adapter, call) => {
      for await (const chunk of adapter.chatStream({ ...job.body, model: call.upstreamModel }, call)) await forward(chunk);
    }, () => sent === 0);
  } catch (err) {
    if (sent > 0) await charge(ctx, job, estimatedUsage(job, produced), true);
    throw err;
  }

  const estimated = !upstreamUsage;
  const usage = upstreamUsage ? fromTokenUsage(upstreamUsage) : estimatedUsage(job, produced);
  const cost = await charge(ctx, job, usage, estimated);
  const usageChunk = {
    id: lastChunk?.id,
    object: 'chat.completion.chunk',
    created: lastChunk?.created ?? Math.floor(Date.now() / 1000),
    model: job.model,
    choices: [],
    usage: {
      ...(upstreamUsage ?? { prompt_tokens: usage.promptTokens, completion_tokens: usage.completionTokens, total_tokens: usage.promptTokens + usage.completionTokens }),
      cost: usdNumber(cost),
    },
  };
  await relay.send({ t: 'done', costNano: cost.toString(), usageChunk });
  return { status: 'ok', promptTokens: usage.promptTokens, completionTokens: usage.completionTokens, costNano: cost.toString(), estimated };
}

/** One chat job: lease → adapter → relay → settle. Failures are relayed as the SPEC §2 error, then rethrown for BullMQ. */
export async function processChat(
  ctx: WorkerContext,
  bullJob: Job<ChatJobData>,
  signal: AbortSignal,
  abort: (reason: unknown) => void,
): Promise<JobSummary> {
  const job = bullJob.data;
  const relay = new RelayPublisher(ctx.redis, ctx.keys.relay(job.webId), job.requestId);
  try {
    return job.stream ? await streamChat(ctx, job, relay, signal, abort) : await completeChat(ctx, job, relay, signal);
  } catch (err) {
    await releaseHold(ctx.db, job.requestId);
    const error = asApiError(err, signal);
    await relay.send({ t: 'error', error: error.toWire() });
    throw error;
  }
}
