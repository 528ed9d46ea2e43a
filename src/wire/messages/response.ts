/** OpenAI chat answer → Anthropic Messages answer (SPEC §1b). Pure functions, no I/O. */
import { randomUUID } from 'node:crypto';
import type { Usage } from '../../billing/money.js';
import { parseArguments } from '../../upstream/providers/anthropic/request.js';
import type { AnthropicUsage } from '../../upstream/providers/anthropic/response.js';
import type { ChatCompletion, Json } from '../../upstream/providers/types.js';

const STOP_REASONS: Record<string, string> = {
  stop: 'end_turn',
  length: 'max_tokens',
  tool_calls: 'tool_use',
  function_call: 'tool_use',
  content_filter: 'refusal',
};

/**
 * Anthropic's stop_reason for an OpenAI finish_reason. OpenAI does not say whether a stop sequence ended the
 * answer (it strips it), so `stop` is always `end_turn`.
 */
export const stopReasonOf = (finishReason: unknown) => STOP_REASONS[String(finishReason ?? 'stop')] ?? 'end_turn';

/** Anthropic-looking message id from an OpenAI completion id. */
export const messageIdOf = (completionId: unknown) =>
  `msg_${(typeof completionId === 'string' ? completionId.replace(/^chatcmpl-/, '') : '') || randomUUID().replaceAll('-', '')}`;

/**
 * Billed usage as Anthropic reports it: input_tokens exclude the cache reads and writes (OpenAI's
 * prompt_tokens include them); `cost` (USD) is eastx's addition, ignored by Anthropic's SDKs.
 */
export function anthropicUsageOf(usage: Usage, cost?: number): Json & AnthropicUsage {
  const read = usage.cachedTokens ?? 0;
  const written = usage.cacheWriteTokens ?? 0;
  return {
    input_tokens: Math.max(0, usage.promptTokens - read - written),
    cache_creation_input_tokens: written,
    cache_read_input_tokens: read,
    output_tokens: usage.completionTokens,
    ...(cost !== undefined ? { cost } : {}),
  };
}

/** The reasoning text an OpenAI-compatible upstream streams or answers beside the content (DeepSeek, Qwen…). */
export const reasoningTextOf = (message: Json | undefined): string => {
  const value = message?.reasoning_content ?? message?.reasoning;
  return typeof value === 'string' ? value : '';
};

/** An OpenAI refusal (`refusal` beside the content, or streamed in deltas): Anthropic's is text with stop_reason `refusal`. */
export const refusalTextOf = (message: Json | undefined): string => (typeof message?.refusal === 'string' ? message.refusal : '');

type ToolCall = { id?: unknown; function?: { name?: unknown; arguments?: unknown } };

/** The content blocks of an OpenAI assistant message: thinking, text (a refusal's too), then tool_use. */
function contentOf(message: Json): Json[] {
  const blocks: Json[] = [];
  const thinking = reasoningTextOf(message);
  if (thinking !== '') blocks.push({ type: 'thinking', thinking, signature: '' });
  const text = (typeof message.content === 'string' ? message.content : '') + refusalTextOf(message);
  if (text !== '') blocks.push({ type: 'text', text });
  const calls: ToolCall[] = Array.isArray(message.tool_calls)
    ? message.tool_calls
    : message.function_call
      ? [{ function: message.function_call as ToolCall['function'] }]
      : [];
  for (const call of calls) {
    blocks.push({
      type: 'tool_use',
      id: typeof call.id === 'string' && call.id !== '' ? call.id : `toolu_${randomUUID().replaceAll('-', '')}`,
      name: String(call.function?.name ?? ''),
      input: parseArguments(call.function?.arguments) ?? {},
    });
  }
  return blocks;
}

/** An OpenAI chat completion as the Anthropic message the client asked for, with the public model id and billed usage. */
export function toAnthropicMessage(completion: ChatCompletion, model: string, usage: Json): Json {
  const choice = (Array.isArray(completion.choices) ? completion.choices[0] : undefined) as Json | undefined;
  const message = (choice?.message ?? {}) as Json;
  return {
    id: messageIdOf(completion.id),
    type: 'message',
    role: 'assistant',
    model,
    content: contentOf(message),
    stop_reason: refusalTextOf(message) !== '' ? 'refusal' : stopReasonOf(choice?.finish_reason),
    stop_sequence: null,
    usage,
  };
}
