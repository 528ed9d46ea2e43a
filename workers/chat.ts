import type { Job } from 'bullmq';
import { countTextTokens, estimateChatPromptTokens } from '../src/billing/estimate.js';
import { type Usage, usdNumber } from '../src/billing/money.js';
import type { ChatJobData } from '../src/queue/jobs.js';
import type { RelayPublisher } from '../src/queue/worker-relay.js';
import type { ChatChunk, TokenUsage } from '../src/upstream/providers/types.js';
import type { WorkerContext } from './context.js';
import { charge, type JobSummary, runJob } from './job-kit.js';
import { withUpstream } from './upstream-call.js';

type Details = Record<string, unknown> | undefined;
const tokens = (value: unknown) => (typeof value === 'number' && Number.isFinite(value) && value > 0 ? Math.trunc(value) : 0);
const detailsOf = (value: unknown): Details => (typeof value === 'object' && value !== null ? (value as Details) : undefined);

/**
 * What the upstream's usage bills (SPEC §3). Every provider reports OpenAI's shape (the Anthropic adapter
 * translates): prompt_tokens include the cached (`prompt_tokens_details.cached_tokens`) and cache-written
 * (`cache_write_tokens`) ones; reasoning tokens are part of completion_tokens. DeepSeek-style upstreams
 * report cache hits as `prompt_cache_hit_tokens` instead.
 */
function fromTokenUsage(usage: TokenUsage): Usage {
  const prompt = detailsOf(usage.prompt_tokens_details);
  return {
    promptTokens: tokens(usage.prompt_tokens),
    completionTokens: tokens(usage.completion_tokens),
    images: 0,
    cachedTokens: tokens(prompt?.cached_tokens ?? usage.prompt_cache_hit_tokens),
    cacheWriteTokens: tokens(prompt?.cache_write_tokens),
  };
}

/** The usage a client sees: the upstream's, with OpenAI's cache and reasoning details always present, and the cost. */
function clientUsage(upstream: TokenUsage | undefined, billed: Usage, cost: bigint): TokenUsage {
  const base = upstream ?? {
    prompt_tokens: billed.promptTokens,
    completion_tokens: billed.completionTokens,
    total_tokens: billed.promptTokens + billed.completionTokens,
  };
  const completion = detailsOf(base.completion_tokens_details);
  return {
    ...base,
    prompt_tokens_details: {
      ...detailsOf(base.prompt_tokens_details),
      cached_tokens: billed.cachedTokens ?? 0,
      cache_write_tokens: billed.cacheWriteTokens ?? 0,
    },
    completion_tokens_details: { ...completion, reasoning_tokens: tokens(completion?.reasoning_tokens) },
    cost: usdNumber(cost),
  };
}

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
    const delta = choice.delta as
      | { content?: string | null; tool_calls?: Array<{ function?: { name?: string; arguments?: string } }> }
      | undefined;
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
  response.usage = clientUsage(response.usage, usage, cost);
  await relay.send({ t: 'done', costNano: cost.toString(), result: response });
  return { status: 'ok', promptTokens: usage.promptTokens, completionTokens: usage.completionTokens, costNano: cost.toString(), estimated };
}

async function streamChat(ctx: WorkerContext, job: ChatJobData, relay: RelayPublisher, signal: AbortSignal): Promise<JobSummary> {
  let sent = 0;
  let produced = '';
  let upstreamUsage: TokenUsage | undefined;
  let lastChunk: ChatChunk | undefined;

  const forward = async (chunk: ChatChunk) => {
    chunk.model = job.model;
    if (chunk.usage) upstreamUsage = chunk.usage;
    if (!chunk.choices || chunk.choices.length === 0) return;
    delete chunk.usage;
    lastChunk = chunk;
    produced += producedTextOf(chunk);
    // a web process that went away is noticed by the worker's ListenerWatch, also while the upstream is silent
    await relay.send({ t: 'chunk', chunk });
    sent++;
  };

  try {
    await withUpstream(
      ctx,
      job,
      signal,
      async (adapter, call) => {
        for await (const chunk of adapter.chatStream({ ...job.body, model: call.upstreamModel }, call)) await forward(chunk);
      },
      () => sent === 0,
    );
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
    usage: clientUsage(upstreamUsage, usage, cost),
  };
  await relay.send({ t: 'done', costNano: cost.toString(), usageChunk });
  return { status: 'ok', promptTokens: usage.promptTokens, completionTokens: usage.completionTokens, costNano: cost.toString(), estimated };
}

/** One chat job: lease → adapter → relay → settle. */
export function processChat(ctx: WorkerContext, bullJob: Job<ChatJobData>, signal: AbortSignal): Promise<JobSummary> {
  const job = bullJob.data;
  return runJob(ctx, job, signal, (relay) => (job.stream ? streamChat(ctx, job, relay, signal) : completeChat(ctx, job, relay, signal)));
}
