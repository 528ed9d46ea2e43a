/** Anthropic Messages API response → OpenAI `chat.completion`. Pure functions, no I/O. */
import { randomUUID } from 'node:crypto';
import type { ChatCompletion, TokenUsage } from '../types.js';

export interface AnthropicUsage {
  input_tokens?: number | null;
  output_tokens?: number | null;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
}

export interface AnthropicBlock {
  type: string;
  text?: string;
  id?: string;
  name?: string;
  input?: unknown;
}

export interface AnthropicMessage {
  id: string;
  content?: AnthropicBlock[];
  stop_reason?: string | null;
  usage?: AnthropicUsage;
}

/** How the OpenAI client asked for tools: legacy `functions` get `function_call` answers, as OpenAI gives. */
export interface ResponseStyle {
  legacyFunctions: boolean;
}

export const styleOf = (body: Record<string, unknown>): ResponseStyle => ({
  legacyFunctions: !Array.isArray(body.tools) && Array.isArray(body.functions) && body.functions.length > 0,
});

const FINISH_REASONS: Record<string, string> = {
  end_turn: 'stop',
  stop_sequence: 'stop',
  pause_turn: 'stop',
  max_tokens: 'length',
  model_context_window_exceeded: 'length',
  tool_use: 'tool_calls',
  refusal: 'content_filter',
};

export function finishReasonOf(stopReason: string | null | undefined, style: ResponseStyle): string {
  const reason = FINISH_REASONS[stopReason ?? ''] ?? 'stop';
  return reason === 'tool_calls' && style.legacyFunctions ? 'function_call' : reason;
}

/** Prompt tokens include cache reads and writes: Anthropic reports them apart from `input_tokens`, and all are billed input. */
export function usageOf(usage: AnthropicUsage): TokenUsage {
  const cached = usage.cache_read_input_tokens ?? 0;
  const prompt = (usage.input_tokens ?? 0) + cached + (usage.cache_creation_input_tokens ?? 0);
  const completion = usage.output_tokens ?? 0;
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: { cached_tokens: cached },
  };
}

/** OpenAI-looking completion id from Anthropic's message id. */
export const completionIdOf = (messageId: string | undefined) =>
  `chatcmpl-${(messageId ?? '').replace(/^msg_/, '') || randomUUID().replaceAll('-', '')}`;

export function toChatCompletion(message: AnthropicMessage, style: ResponseStyle, created = Math.floor(Date.now() / 1000)): ChatCompletion {
  const blocks = message.content ?? [];
  const text = blocks
    .filter((b) => b.type === 'text')
    .map((b) => b.text ?? '')
    .join('');
  const calls = blocks
    .filter((b) => b.type === 'tool_use')
    .map((b) => ({ id: b.id ?? '', type: 'function', function: { name: b.name ?? '', arguments: JSON.stringify(b.input ?? {}) } }));
  const answer: Record<string, unknown> = { role: 'assistant', content: text === '' && calls.length > 0 ? null : text, refusal: null };
  if (calls.length > 0 && style.legacyFunctions) answer.function_call = calls[0].function;
  else if (calls.length > 0) answer.tool_calls = calls;
  return {
    id: completionIdOf(message.id),
    object: 'chat.completion',
    created,
    choices: [{ index: 0, message: answer, logprobs: null, finish_reason: finishReasonOf(message.stop_reason, style) }],
    ...(message.usage ? { usage: usageOf(message.usage) } : {}),
  };
}
