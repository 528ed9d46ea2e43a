/** Provider-neutral content logic: token counting, what to reply, how to chunk it, embeddings. */
import { createHash } from 'node:crypto';
import { decode, encode } from 'gpt-tokenizer';
import { TokenCounter } from '../billing/estimate.js';
import { randomId } from './http.js';
import { sampleOf, toolArgumentsOf } from './schema-sample.js';

/** Treat special-token look-alikes (`<|endoftext|>`) in user text as plain text. */
const ENCODE_OPTIONS = { disallowedSpecial: new Set<string>() };

/** o200k's count, bounded like the gateway's own estimate so a hostile prompt cannot hang the mock either. */
export function countTokens(text: string): number {
  return new TokenCounter().count(text);
}

/** Longer words are cut by characters, not tokenized: BPE is quadratic in a piece's length (src/billing/estimate.ts). */
const LONGEST_EXACT_WORD = 256;

/**
 * The first `maxTokens` tokens of a text, in time linear in what is kept: only the words up to the first that
 * overflows are tokenized (a 20 MB one-word prompt echoed back once froze the mock for minutes).
 */
function truncateTokens(text: string, maxTokens: number): { text: string; truncated: boolean } {
  if (countTokens(text) <= maxTokens) return { text, truncated: false };
  let tokens = 0; // of the words before this one
  for (const word of text.matchAll(/\s*\S+/g)) {
    const wordTokens = countTokens(word[0]);
    if (tokens + wordTokens <= maxTokens) {
      tokens += wordTokens;
      continue;
    }
    // a token is at least one character: this many cannot make more tokens than are left
    if (word[0].length > LONGEST_EXACT_WORD) return { text: text.slice(0, word.index + maxTokens - tokens), truncated: true };
    const kept = text.slice(0, word.index + word[0].length);
    return { text: decode(encode(kept, ENCODE_OPTIONS).slice(0, Math.max(0, maxTokens))), truncated: true };
  }
  return { text, truncated: false }; // the whole count was a bound past its time budget; word by word it fits
}

// ---------------------------------------------------------------- reply planning

/** What the provider handler extracted from the request, in neutral terms. */
export interface ReplyInput {
  /** text of the last user turn ("" if none) */
  lastUserText: string;
  /** content of the tool result when the last turn hands one back */
  toolResult?: string | undefined;
  /** the tool to call, when tools are offered, allowed, and the last turn is a user message */
  toolName?: string | undefined;
  /** that tool's parameters (JSON Schema): the call's arguments fit them */
  toolParameters?: unknown;
  /** a JSON answer was asked for (response_format): with a schema, the answer fits it */
  json?: { schema?: unknown } | undefined;
  maxTokens?: number | undefined;
  stopSequences: string[];
  /** Behavior.reply */
  reply?: string | undefined;
  /** Behavior.emptyToolInput */
  emptyToolInput?: boolean | undefined;
}

export type ReplyPlan =
  | {
      kind: 'text';
      text: string;
      /** "stop": natural end, "length": max tokens hit, "stop_sequence": a stop sequence cut it */
      finish: 'stop' | 'length' | 'stop_sequence';
      stopSequence?: string | undefined;
      outputTokens: number;
    }
  | { kind: 'tool'; id: string; name: string; arguments: string; outputTokens: number };

/** A JSON answer: a sample of the schema, or for json_object an object carrying the usual greeting. */
function jsonAnswer(json: { schema?: unknown }, lastUserText: string): string {
  if (json.schema === undefined) return JSON.stringify({ answer: `Hello! You said: ${lastUserText}` });
  return JSON.stringify(sampleOf(json.schema, lastUserText));
}

/**
 * Precedence: tool call > Behavior.reply > JSON answer (response_format) > tool-result echo > `Hello! You said: …`.
 * Stop sequences cut the text first, then max tokens truncate it.
 */
export function planReply(input: ReplyInput, toolIdPrefix: string): ReplyPlan {
  if (input.toolName !== undefined) {
    const args = input.emptyToolInput ? '{}' : JSON.stringify(toolArgumentsOf(input.toolParameters, input.lastUserText));
    return {
      kind: 'tool',
      id: randomId(toolIdPrefix),
      name: input.toolName,
      arguments: args,
      outputTokens: countTokens(input.toolName) + countTokens(args),
    };
  }
  let text =
    input.reply ??
    (input.json !== undefined
      ? jsonAnswer(input.json, input.lastUserText)
      : input.toolResult !== undefined
        ? `Tool result received: ${input.toolResult}`
        : `Hello! You said: ${input.lastUserText}`);
  let finish: 'stop' | 'length' | 'stop_sequence' = 'stop';
  let stopSequence: string | undefined;
  const cut = firstStop(text, input.stopSequences);
  if (cut) {
    text = text.slice(0, cut.index);
    finish = 'stop_sequence';
    stopSequence = cut.sequence;
  }
  if (input.maxTokens !== undefined) {
    const truncated = truncateTokens(text, input.maxTokens);
    if (truncated.truncated) {
      text = truncated.text;
      finish = 'length';
      stopSequence = undefined;
    }
  }
  return { kind: 'text', text, finish, stopSequence, outputTokens: countTokens(text) };
}

function firstStop(text: string, stops: string[]): { index: number; sequence: string } | undefined {
  let best: { index: number; sequence: string } | undefined;
  for (const sequence of stops) {
    if (sequence === '') continue;
    const index = text.indexOf(sequence);
    if (index >= 0 && (!best || index < best.index)) best = { index, sequence };
  }
  return best;
}

// ---------------------------------------------------------------- chunking

/** Splits text into word pieces that keep their trailing whitespace: "Hi there" → ["Hi ", "there"]. */
export function textPieces(text: string): string[] {
  return text.match(/\s*\S+\s*/g) ?? (text === '' ? [] : [text]);
}

/** Splits a string (e.g. tool-call JSON) into `parts` fragments on code-point boundaries. */
export function fragments(text: string, parts = 4): string[] {
  const chars = Array.from(text);
  const size = Math.max(1, Math.ceil(chars.length / parts));
  const out: string[] = [];
  for (let i = 0; i < chars.length; i += size) out.push(chars.slice(i, i + size).join(''));
  return out;
}

// ---------------------------------------------------------------- embeddings

export const EMBEDDING_DIMENSIONS = 8;

/** Deterministic float32-exact vector in [-1, 1] derived from a hash of the input. */
export function embeddingVector(key: string, dimensions = EMBEDDING_DIMENSIONS): number[] {
  const digest = createHash('sha256').update(key).digest();
  const vector: number[] = [];
  for (let i = 0; i < Math.min(dimensions, EMBEDDING_DIMENSIONS); i++) {
    vector.push(Math.fround((digest.readUInt32LE(i * 4) / 0xffffffff) * 2 - 1));
  }
  return vector;
}

/** base64 of little-endian float32, as OpenAI's `encoding_format: "base64"`. */
export function float32Base64(vector: number[]): string {
  const buffer = Buffer.alloc(vector.length * 4);
  vector.forEach((value, i) => buffer.writeFloatLE(value, i * 4));
  return buffer.toString('base64');
}
