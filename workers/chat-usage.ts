/** The usage of chat-completion answers as billed (SPEC §3) and as clients see it; shared by every wire format. */
import { countChatPromptTokens, countTextTokens } from '../src/billing/estimate.js';
import { MAX_TOKEN_COUNT, type Usage, usdNumber } from '../src/billing/money.js';
import type { ChatChunk, TokenUsage } from '../src/upstream/providers/types.js';
import { reasoningTextOf, refusalTextOf } from '../src/wire/messages/response.js';

type Details = Record<string, unknown> | undefined;
/** A count as billed: details (cached, cache-written) are not checked by the adapters, so they are bounded here too. */
const tokens = (value: unknown) =>
  typeof value === 'number' && Number.isFinite(value) && value > 0 ? Math.min(Math.trunc(value), MAX_TOKEN_COUNT) : 0;
const detailsOf = (value: unknown): Details => (typeof value === 'object' && value !== null ? (value as Details) : undefined);

/**
 * What the upstream's usage bills (SPEC §3). Every provider reports OpenAI's shape (the Anthropic adapter
 * translates): prompt_tokens include the cached (`prompt_tokens_details.cached_tokens`) and cache-written
 * (`cache_write_tokens`) ones; reasoning tokens are part of completion_tokens. DeepSeek-style upstreams
 * report cache hits as `prompt_cache_hit_tokens` instead.
 */
export function fromTokenUsage(usage: TokenUsage): Usage {
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
export function clientUsage(upstream: TokenUsage | undefined, billed: Usage, cost: bigint): TokenUsage {
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

/**
 * Usage counted by the gateway itself where the upstream gave none (the ledger row is marked estimated): the
 * prompt as the upstream reported it when it did (Anthropic's message_start), else the gateway's own count
 * (not the hold's upper bound, which adds margins for the worst case), and what was produced.
 */
export function estimatedUsage(chatBody: Record<string, unknown>, producedText: string, reportedPrompt?: TokenUsage): Usage {
  const prompt = reportedPrompt
    ? fromTokenUsage(reportedPrompt)
    : { promptTokens: countChatPromptTokens(chatBody as { messages: unknown[] }), images: 0 };
  return { ...prompt, completionTokens: countTextTokens(producedText) };
}

/** A chunk's `promptUsage` (the gateway's own field), taken off it so that it is never relayed. */
export function takePromptUsage(chunk: ChatChunk): TokenUsage | undefined {
  const { promptUsage } = chunk;
  if (promptUsage) delete chunk.promptUsage;
  return promptUsage;
}

/** A chat message or a chunk's delta: the parts of it that are output. */
type Produced = Record<string, unknown> & { tool_calls?: Array<{ function?: { name?: unknown; arguments?: unknown } }> };

const text = (value: unknown) => (typeof value === 'string' ? value : '');

function producedTextOfPart(part: Produced | undefined): string {
  // in the order a stream brings them; reasoning and refusals read as the translations read them
  let produced = reasoningTextOf(part) + text(part?.content) + refusalTextOf(part);
  if (!Array.isArray(part?.tool_calls)) return produced;
  for (const call of part.tool_calls) produced += text(call.function?.name) + text(call.function?.arguments);
  return produced;
}

/** Text, refusal, reasoning and tool-call fragments of a chunk, for counting what was produced. */
export function producedTextOf(chunk: ChatChunk): string {
  return (chunk.choices ?? []).map((choice) => producedTextOfPart(choice.delta as Produced | undefined)).join('');
}

/** The same of a whole chat answer's choices: what its stream would have counted, not the JSON around it. */
export function producedTextOfChoices(choices: unknown): string {
  if (!Array.isArray(choices)) return '';
  return choices.map((choice) => producedTextOfPart((choice as { message?: Produced } | null)?.message)).join('');
}

/** The same of an Anthropic message's content blocks: text, thinking and tool input, as its stream counts them. */
export function producedTextOfBlocks(content: unknown): string {
  if (!Array.isArray(content)) return '';
  return content
    .map((block: { type?: unknown; text?: unknown; thinking?: unknown; input?: unknown } | null) => {
      if (block?.type === 'tool_use') return JSON.stringify(block.input ?? {});
      return text(block?.text) + text(block?.thinking);
    })
    .join('');
}
