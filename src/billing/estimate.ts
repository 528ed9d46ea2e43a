import { countTokens } from 'gpt-tokenizer';

/** Tokens charged for one image part in the worst case (a large high-detail image on OpenAI's tile scheme). */
export const IMAGE_PART_TOKENS = 2_000;
const PER_MESSAGE_OVERHEAD = 8;
const PER_REQUEST_OVERHEAD = 16;

export function countTextTokens(text: string): number {
  return text ? countTokens(text) : 0;
}

/** Text and image parts of a chat message's content (string, array of parts, or null). */
function contentCost(content: unknown): number {
  if (typeof content === 'string') return countTextTokens(content);
  if (!Array.isArray(content)) return 0;
  let tokens = 0;
  for (const part of content as Array<Record<string, unknown>>) {
    if (part?.type === 'text' && typeof part.text === 'string') tokens += countTextTokens(part.text);
    else if (part?.type === 'image_url' || part?.type === 'input_image') tokens += IMAGE_PART_TOKENS;
    else tokens += countTextTokens(JSON.stringify(part ?? ''));
  }
  return tokens;
}

/**
 * Upper estimate of a chat request's prompt tokens for the worst-case hold (SPEC §3): every message's text
 * counted with a real tokenizer (o200k), tool definitions and tool calls as their JSON, a 10 % margin for
 * other providers' tokenizers, and per-message framing.
 */
export function estimateChatPromptTokens(body: { messages: unknown[]; tools?: unknown; functions?: unknown }): number {
  let tokens = 0;
  for (const message of body.messages as Array<Record<string, unknown>>) {
    tokens += PER_MESSAGE_OVERHEAD + contentCost(message.content);
    if (message.tool_calls) tokens += countTextTokens(JSON.stringify(message.tool_calls));
    if (message.function_call) tokens += countTextTokens(JSON.stringify(message.function_call));
    if (typeof message.name === 'string') tokens += countTextTokens(message.name);
  }
  if (body.tools) tokens += countTextTokens(JSON.stringify(body.tools));
  if (body.functions) tokens += countTextTokens(JSON.stringify(body.functions));
  return Math.ceil(tokens * 1.1) + PER_REQUEST_OVERHEAD;
}

/** Embedding inputs: strings are tokenized, token arrays are counted as they are. */
export function estimateEmbeddingTokens(input: unknown): number {
  const items = Array.isArray(input) && !input.every((x) => typeof x === 'number') ? input : [input];
  let tokens = 0;
  for (const item of items) {
    if (typeof item === 'string') tokens += countTextTokens(item);
    else if (Array.isArray(item)) tokens += item.length;
    else if (typeof item === 'number') tokens += 1;
  }
  return Math.ceil(tokens * 1.1) + items.length;
}
