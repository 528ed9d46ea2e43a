/** Anthropic Messages API stream events → OpenAI `chat.completion.chunk`s. */
import { UpstreamError } from '../../errors.js';
import type { ChatChunk } from '../types.js';
import { type AnthropicBlock, type AnthropicUsage, completionIdOf, finishReasonOf, type ResponseStyle, usageOf } from './response.js';
import { jsonContentOf } from './structured.js';

export interface AnthropicEvent {
  type: string;
  message?: { id?: string; usage?: AnthropicUsage };
  index?: number;
  content_block?: AnthropicBlock;
  delta?: { type?: string; text?: string; partial_json?: string; stop_reason?: string | null };
  usage?: AnthropicUsage;
  error?: { type?: string; message?: string };
}

/** An in-stream `error` event keeps its HTTP meaning, so an overload still cools the token down. */
const ERROR_STATUS: Record<string, number> = { overloaded_error: 529, rate_limit_error: 429, api_error: 500 };

/** An in-stream `error` event as the UpstreamError it means. */
export function streamErrorOf(event: AnthropicEvent): UpstreamError {
  const type = event.error?.type ?? 'api_error';
  return new UpstreamError('http', event.error?.message ?? 'the upstream stream reported an error', {
    status: ERROR_STATUS[type] ?? 200,
    providerCode: type,
  });
}

/** Keeps only the fields a later event actually reports (message_delta repeats some as null). */
export function mergeUsage(into: AnthropicUsage | undefined, update: AnthropicUsage | undefined): AnthropicUsage | undefined {
  if (!update) return into;
  const reported = Object.entries(update).filter(([, value]) => typeof value === 'number');
  return { ...into, ...Object.fromEntries(reported) };
}

/**
 * Feed it each parsed event in order; it returns the OpenAI chunks that event becomes. Tool-use blocks get
 * OpenAI tool-call indexes 0, 1, … in the order they start, whatever their Anthropic block index. A tool call
 * that ends without argument text (Anthropic streams `partial_json: ""`, or nothing, for a tool without
 * parameters) gets the fragment `{}` at its end: OpenAI's arguments are always JSON, as the non-stream answer's are.
 */
export class StreamTranslator {
  #id = completionIdOf(undefined);
  #created = Math.floor(Date.now() / 1000);
  #usage: AnthropicUsage | undefined;
  #toolIndexByBlock = new Map<number, number>();
  /** Tool-use blocks that streamed some argument text. */
  #blocksWithArguments = new Set<number>();
  /** The block of the forced JSON tool (response_format), whose input is streamed as content. */
  #jsonBlock: number | undefined;
  /** A wrapped JSON answer (`{"value": …}`) is sent as one content delta when its block ends. */
  #jsonBuffer = '';
  #roleSent = false;
  /** message_stop arrived: the stream is complete. */
  finished = false;

  constructor(private readonly style: ResponseStyle) {}

  #chunk(delta: Record<string, unknown>, finishReason: string | null = null): ChatChunk {
    return {
      id: this.#id,
      object: 'chat.completion.chunk',
      created: this.#created,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
    };
  }

  /**
   * The role chunk goes out just before the first real output, not at message_start: an error event before
   * any output (overloads often come right away) then leaves nothing sent, and the job may try another token.
   * It carries message_start's usage as `promptUsage`, for a stream cut short.
   */
  #withRole(chunks: ChatChunk[]): ChatChunk[] {
    if (this.#roleSent || chunks.length === 0) return chunks;
    this.#roleSent = true;
    const role = this.#chunk({ role: 'assistant', content: '' });
    if (this.#usage) role.promptUsage = usageOf(this.#usage);
    return [role, ...chunks];
  }

  #toolDelta(index: number, fn: { name?: string; arguments: string }, id?: string): Record<string, unknown> {
    if (this.style.legacyFunctions) return { function_call: fn };
    return { tool_calls: [{ index, ...(id !== undefined ? { id, type: 'function' } : {}), function: fn }] };
  }

  push(event: AnthropicEvent): ChatChunk[] {
    switch (event.type) {
      case 'message_start':
        this.#id = completionIdOf(event.message?.id);
        this.#usage = mergeUsage(undefined, event.message?.usage);
        return [];
      case 'content_block_start':
        return this.#withRole(this.#blockStart(event.index ?? 0, event.content_block));
      case 'content_block_delta':
        return this.#withRole(this.#blockDelta(event.index ?? 0, event.delta ?? {}));
      case 'message_delta':
        this.#usage = mergeUsage(this.#usage, event.usage);
        return this.#withRole([this.#chunk({}, finishReasonOf(event.delta?.stop_reason, this.style, this.#toolIndexByBlock.size > 0))]);
      case 'content_block_stop':
        return this.#withRole(this.#blockStop(event.index ?? 0));
      case 'message_stop': {
        this.finished = true;
        const usage = this.#usage && {
          id: this.#id,
          object: 'chat.completion.chunk',
          created: this.#created,
          choices: [],
          usage: usageOf(this.#usage),
        };
        return this.#withRole(usage ? [usage] : []);
      }
      case 'error':
        throw streamErrorOf(event);
      default:
        return []; // ping, and event types this gateway does not translate
    }
  }

  #blockStart(blockIndex: number, block: AnthropicBlock | undefined): ChatChunk[] {
    const json = this.style.jsonTool;
    // a JSON answer is the content: text beside it (a preamble) would make it unparsable
    if (block?.type === 'text') return block.text && !json ? [this.#chunk({ content: block.text })] : [];
    if (block?.type !== 'tool_use') return [];
    if (json && block.name === json.name) {
      this.#jsonBlock ??= blockIndex;
      return [];
    }
    if (this.style.legacyFunctions && this.#toolIndexByBlock.size > 0) return []; // legacy answers carry one call
    const index = this.#toolIndexByBlock.size;
    this.#toolIndexByBlock.set(blockIndex, index);
    return [this.#chunk(this.#toolDelta(index, { name: block.name ?? '', arguments: '' }, block.id ?? ''))];
  }

  #blockDelta(blockIndex: number, delta: NonNullable<AnthropicEvent['delta']>): ChatChunk[] {
    if (blockIndex === this.#jsonBlock) {
      if (delta.type !== 'input_json_delta' || !delta.partial_json) return [];
      if (!this.style.jsonTool?.wrapped) return [this.#chunk({ content: delta.partial_json })];
      this.#jsonBuffer += delta.partial_json;
      return [];
    }
    if (delta.type === 'text_delta' && delta.text && !this.style.jsonTool) return [this.#chunk({ content: delta.text })];
    const index = this.#toolIndexByBlock.get(blockIndex);
    if (delta.type === 'input_json_delta' && delta.partial_json && index !== undefined) {
      this.#blocksWithArguments.add(blockIndex);
      return [this.#chunk(this.#toolDelta(index, { arguments: delta.partial_json }))];
    }
    return []; // thinking, signature and citation deltas have no OpenAI counterpart
  }

  #blockStop(blockIndex: number): ChatChunk[] {
    const index = this.#toolIndexByBlock.get(blockIndex);
    if (index !== undefined && !this.#blocksWithArguments.has(blockIndex)) {
      return [this.#chunk(this.#toolDelta(index, { arguments: '{}' }))];
    }
    const json = this.style.jsonTool;
    if (blockIndex !== this.#jsonBlock || !json?.wrapped) return [];
    try {
      return [this.#chunk({ content: jsonContentOf(json, JSON.parse(this.#jsonBuffer)) })];
    } catch {
      // cut short (max_tokens): what came of the value, as OpenAI streams a truncated JSON answer
      return [this.#chunk({ content: this.#jsonBuffer.replace(/^\s*\{\s*"value"\s*:\s*/, '') })];
    }
  }
}
