/** Anthropic Messages API response → OpenAI `chat.completion`. Pure functions, no I/O. */
import { randomUUID } from 'node:crypto';
import type { ChatCompletion, TokenUsage } from '../types.js';
import { type JsonResponseTool, jsonContentOf, jsonResponseToolOf } from './structured.js';

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

/**
 * How the OpenAI client asked: legacy `functions` get `function_call` answers, as OpenAI gives; a
 * response_format became a forced JSON tool whose input is the answer's content.
 */
export interface ResponseStyle {
  legacyFunctions: boolean;
  jsonTool?: JsonResponseTool | undefined;
}

export const styleOf = (body: Record<string, unknown>): ResponseStyle => ({
  legacyFunctions: !Array.isArray(body.tools) && Array.isArray(body.functions) && body.functions.length > 0,
  jsonTool: jsonResponseToolOf(body),
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

/** `clientToolCalls`: whether the answer calls a client's tool (a JSON answer through the forced tool is a plain stop). */
export function finishReasonOf(stopReason: string | null | undefined, style: ResponseStyle, clientToolCalls = true): string {
  const reason = FINISH_REASONS[stopReason ?? ''] ?? 'stop';
  if (reason !== 'tool_calls') return reason;
  if (!clientToolCalls) return 'stop';
  return style.legacyFunctions ? 'function_call' : reason;
}

/**
 * OpenAI's usage: prompt tokens include cache reads and writes (Anthropic reports them apart from
 * `input_tokens`), shown as `prompt_tokens_details.cached_tokens` and `cache_write_tokens`; Anthropic counts
 * thinking inside output_tokens and does not report it apart.
 */
export function usageOf(usage: AnthropicUsage): TokenUsage {
  const cached = usage.cache_read_input_tokens ?? 0;
  const written = usage.cache_creation_input_tokens ?? 0;
  const prompt = (usage.input_tokens ?? 0) + cached + written;
  const completion = usage.output_tokens ?? 0;
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: { cached_tokens: cached, cache_write_tokens: written },
    completion_tokens_details: { reasoning_tokens: 0 },
  };
}

/** OpenAI-looking completion id from Anthropic's message id. */
export const completionIdOf = (messageId: string | undefined) =>
  `chatcmpl-${(messageId ?? '').replace(/^msg_/, '') || randomUUID().replaceAll('-', '')}`;

export function toChatCompletion(message: AnthropicMessage, style: ResponseStyle, created = Math.floor(Date.now() / 1000)): ChatCompletion {
  const blocks = message.content ?? [];
  const json = style.jsonTool;
  const jsonBlock = json && blocks.find((b) => b.type === 'tool_use' && b.name === json.name);
  // a JSON answer is the content: text beside it (a preamble) would make it unparsable
  const text =
    json && jsonBlock
      ? jsonContentOf(json, jsonBlock.input)
      : blocks
          .filter((b) => b.type === 'text' && !json)
          .map((b) => b.text ?? '')
          .join('');
  const calls = blocks
    .filter((b) => b.type === 'tool_use' && b !== jsonBlock && !(json && b.name === json.name))
    .map((b) => ({ id: b.id ?? '', type: 'function', function: { name: b.name ?? '', arguments: JSON.stringify(b.input ?? {}) } }));
  const answer: Record<string, unknown> = { role: 'assistant', content: text === '' && calls.length > 0 ? null : text, refusal: null };
  if (calls.length > 0 && style.legacyFunctions) answer.function_call = calls[0].function;
  else if (calls.length > 0) answer.tool_calls = calls;
  return {
    id: completionIdOf(message.id),
    object: 'chat.completion',
    created,
    choices: [{ index: 0, message: answer, logprobs: null, finish_reason: finishReasonOf(message.stop_reason, style, calls.length > 0) }],
    ...(message.usage ? { usage: usageOf(message.usage) } : {}),
  };
}
