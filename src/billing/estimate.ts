import { Buffer } from 'node:buffer';
import { countTokens } from 'gpt-tokenizer';

/** Tokens charged for one image part in the worst case (a large high-detail image on OpenAI's tile scheme). */
export const IMAGE_PART_TOKENS = 2_000;
const PER_MESSAGE_OVERHEAD = 8;
const PER_REQUEST_OVERHEAD = 16;
/**
 * What a provider adds to a prompt that offers tools or asks for a JSON format: Anthropic's tool-use system
 * prompt is up to 346 tokens (and a response_format becomes a tool there), OpenAI's preamble less.
 */
const TOOL_PROMPT_OVERHEAD = 400;
/** Other providers' tokenizers may count a little more than o200k. */
const MARGIN = 1.1;
/** A count of o200k tokens as an upper bound of another provider's tokenizer's. */
export const withMargin = (tokens: number) => Math.ceil(tokens * MARGIN);

/**
 * Time one estimate may spend tokenizing exactly; what is left then is counted by its UTF-8 bytes. Measured on
 * the 2-core development machine, ordinary text (prose, code, CJK) tokenizes at 3–15 MB/s, so the first
 * 150–750 KB of a prompt (~40k–190k tokens) are counted exactly; text built to be slow (random letters that
 * never repeat) runs at 0.2–0.5 MB/s and would otherwise stall the web process for seconds per MB.
 */
export const EXACT_BUDGET_MS = 50;
/** Longer stretches without a piece boundary are counted by bytes: BPE is quadratic in a piece's length. */
const MAX_SEGMENT = 256;
/** Text handed to the tokenizer per call (each call has a fixed cost of a few µs). */
const BATCH_CHARS = 2_048;
/** How many characters of one stretch are scanned between two looks at the clock. */
const CLOCK_EVERY = 0x10000;

// Character classes for the boundary scan: UTF-16 code units, so the table covers the BMP; surrogates are unknown.
const LETTER = 0,
  MARK = 1,
  DIGIT = 2,
  NEWLINE = 3,
  SPACE = 4,
  APOSTROPHE = 5,
  SLASH = 6,
  OTHER = 7,
  SURROGATE = 8;
const CLASSES = 9;

function classTable(): Uint8Array {
  const table = new Uint8Array(0x10000);
  const letter = /\p{L}/u,
    mark = /\p{M}/u,
    digit = /\p{N}/u,
    space = /\s/;
  for (let code = 0; code < 0x10000; code++) {
    const ch = String.fromCharCode(code);
    table[code] =
      code >= 0xd800 && code <= 0xdfff
        ? SURROGATE
        : code === 10 || code === 13
          ? NEWLINE
          : letter.test(ch)
            ? LETTER
            : mark.test(ch)
              ? MARK
              : digit.test(ch)
                ? DIGIT
                : space.test(ch)
                  ? SPACE
                  : code === 39
                    ? APOSTROPHE
                    : code === 47
                      ? SLASH
                      : OTHER;
  }
  return table;
}

/**
 * Where o200k's pre-tokenizer (gpt-tokenizer's O200K_TOKEN_SPLIT_REGEX) ends a piece whatever the text around,
 * so that counting the text on each side separately gives exactly the count of the whole:
 * - after a letter, unless a letter, mark or apostrophe follows (letters only occur in the two letter
 *   alternatives, which continue only with letters, marks and the 's/'ll/… suffix);
 * - on either side of a digit (digits only occur in `\p{N}{1,3}`), except after a space or tab: there the cut
 *   would change how `\s+(?!\S)` splits the whitespace before it (its lookahead would see the end of the text);
 * - after \r or \n, unless whitespace or `/` follows (the only alternatives holding a newline end with
 *   newlines, whitespace or `/`; whitespace ending in a newline is always one `\s*[\r\n]+` piece).
 * Astral characters (surrogates) are never taken as a boundary: a missed boundary costs exactness, not safety.
 */
function boundaryTable(): Uint8Array {
  const table = new Uint8Array(CLASSES * CLASSES);
  for (let before = 0; before < CLASSES; before++) {
    for (let after = 0; after < CLASSES; after++) {
      const afterLetter = before === LETTER && ![LETTER, MARK, APOSTROPHE, SURROGATE].includes(after);
      const digitEdge = ![SURROGATE, SPACE].includes(before) && after !== SURROGATE && (before === DIGIT) !== (after === DIGIT);
      const afterNewline = before === NEWLINE && ![NEWLINE, SPACE, SLASH].includes(after);
      table[before * CLASSES + after] = afterLetter || digitEdge || afterNewline ? 1 : 0;
    }
  }
  return table;
}

const CLASS = classTable();
const BOUNDARY = boundaryTable();
/** Strings that look like special tokens (`<|endoftext|>`) are plain text in a prompt, as upstreams treat them. */
const PLAIN_TEXT = { disallowedSpecial: new Set<string>() };

const bytesOf = (text: string, from = 0, to = text.length) =>
  Buffer.byteLength(from === 0 && to === text.length ? text : text.slice(from, to));

/**
 * Counts prompt tokens for one request in time linear in its size and bounded overall, as an upper bound of
 * o200k's count: byte-level BPE never makes more tokens than the text has UTF-8 bytes, so every part not
 * tokenized exactly (stretches without a piece boundary longer than MAX_SEGMENT, anything after the time budget)
 * is counted by its bytes, and the exactly tokenized parts are cut only where o200k ends a piece anyway.
 */
export class TokenCounter {
  private readonly deadline: number;
  private readonly batchChars: number;
  private outOfTime = false;

  constructor({ budgetMs = EXACT_BUDGET_MS, batchChars = BATCH_CHARS }: { budgetMs?: number; batchChars?: number } = {}) {
    this.deadline = performance.now() + budgetMs;
    this.batchChars = batchChars;
  }

  private spent(): boolean {
    return (this.outOfTime ||= performance.now() > this.deadline);
  }

  count(text: string): number {
    if (!text) return 0;
    if (this.spent()) return bytesOf(text);
    if (text.length <= MAX_SEGMENT) return countTokens(text, PLAIN_TEXT);
    const exact = (from: number, to: number) => (from < to ? countTokens(text.slice(from, to), PLAIN_TEXT) : 0);
    let tokens = 0;
    let batchStart = 0; // text before it is counted
    let segmentStart = 0; // the last boundary seen
    let before = CLASS[text.charCodeAt(0)];
    for (let i = 1; i <= text.length; i++) {
      const after = i < text.length ? CLASS[text.charCodeAt(i)] : OTHER;
      if (i < text.length && !BOUNDARY[before * CLASSES + after]) {
        before = after;
        if (i % CLOCK_EVERY === 0 && this.spent()) return tokens + bytesOf(text, batchStart);
        continue;
      }
      before = after;
      if (i - segmentStart > MAX_SEGMENT) {
        tokens += exact(batchStart, segmentStart) + bytesOf(text, segmentStart, i);
        batchStart = i;
      } else if (i - batchStart >= this.batchChars || i === text.length) {
        tokens += exact(batchStart, i);
        batchStart = i;
        if (i < text.length && this.spent()) return tokens + bytesOf(text, i);
      }
      segmentStart = i;
    }
    return tokens;
  }

  /** JSON text of a value (tool definitions, tool calls, unknown content parts), as the upstream sees it. */
  countJson(value: unknown): number {
    return this.count(JSON.stringify(value ?? ''));
  }
}

/** Tokens of one text, with a budget of its own (the worker's count of produced text, embedding inputs). */
export function countTextTokens(text: string): number {
  return new TokenCounter().count(text);
}

/** Text and image parts of a chat message's content (string, array of parts, or null). */
function contentCost(counter: TokenCounter, content: unknown): number {
  if (typeof content === 'string') return counter.count(content);
  if (!Array.isArray(content)) return 0;
  let tokens = 0;
  for (const part of content as Array<Record<string, unknown>>) {
    if (part?.type === 'text' && typeof part.text === 'string') tokens += counter.count(part.text);
    else if (part?.type === 'image_url' || part?.type === 'input_image') tokens += IMAGE_PART_TOKENS;
    else tokens += counter.countJson(part);
  }
  return tokens;
}

type ChatPrompt = { messages: unknown[]; tools?: unknown; functions?: unknown; response_format?: unknown };

/**
 * The gateway's own count of a chat request's prompt tokens (o200k, bounded as TokenCounter says): every
 * message's text, tool definitions and tool calls as their JSON, and per-message framing. What
 * `/v1/messages/count_tokens` answers where the upstream cannot count.
 */
export function countChatPromptTokens(body: ChatPrompt): number {
  const counter = new TokenCounter();
  let tokens = 0;
  for (const message of body.messages as Array<Record<string, unknown>>) {
    tokens += PER_MESSAGE_OVERHEAD + contentCost(counter, message.content);
    if (message.tool_calls) tokens += counter.countJson(message.tool_calls);
    if (message.function_call) tokens += counter.countJson(message.function_call);
    if (typeof message.name === 'string') tokens += counter.count(message.name);
  }
  if (body.tools) tokens += counter.countJson(body.tools);
  if (body.functions) tokens += counter.countJson(body.functions);
  if (body.response_format) tokens += counter.countJson(body.response_format);
  return tokens;
}

/**
 * Upper estimate of a chat request's prompt tokens for the worst-case hold (SPEC §3): the count above, a 10 %
 * margin for other providers' tokenizers, and the request's framing and tool prompt.
 */
export function estimateChatPromptTokens(body: ChatPrompt): number {
  const toolPrompt = body.tools || body.functions || body.response_format ? TOOL_PROMPT_OVERHEAD : 0;
  return withMargin(countChatPromptTokens(body)) + PER_REQUEST_OVERHEAD + toolPrompt;
}

/** Embedding inputs: strings are tokenized, token arrays are counted as they are. */
export function estimateEmbeddingTokens(input: unknown): number {
  const items = Array.isArray(input) && !input.every((x) => typeof x === 'number') ? input : [input];
  const counter = new TokenCounter();
  let tokens = 0;
  for (const item of items) {
    if (typeof item === 'string') tokens += counter.count(item);
    else if (Array.isArray(item)) tokens += item.length;
    else if (typeof item === 'number') tokens += 1;
  }
  return withMargin(tokens) + items.length;
}
