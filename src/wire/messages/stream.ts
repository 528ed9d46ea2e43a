/**
 * OpenAI chat chunks → Anthropic Messages stream events (SPEC §1b), for `openai` and `dashscope` channels:
 * `message_start`, `ping`, then per content block `content_block_start` / `content_block_delta` (`thinking_delta`,
 * `text_delta`, `input_json_delta`) / `content_block_stop` with indexes 0, 1, …, and at the end `message_delta`
 * (stop_reason, usage) and `message_stop`. The other direction is src/upstream/providers/anthropic/stream.ts.
 */
import type { SseEvent } from '../../http/sse.js';
import type { ChatChunk, Json } from '../../upstream/providers/types.js';
import { type ToolCallKey, toolCallKeyOf } from '../tool-call-key.js';
import { messageIdOf, reasoningTextOf, refusalTextOf, stopReasonOf } from './response.js';

/** An Anthropic stream event: its SSE event name is its `type`. */
export const eventOf = (data: Json & { type: string }): SseEvent => ({ event: data.type, data });

type OpenBlock = { kind: 'thinking' | 'text' | 'tool' };
type ToolDelta = { index?: number; id?: string; function?: { name?: string; arguments?: string } };
/** A tool call that came while another call's block was open: its header and argument fragments, held back. */
type WaitingCall = { id?: string | undefined; name?: string | undefined; fragments: string[] };

const toolUseBlock = (index: number, id: string | undefined, name: string | undefined): Json => ({
  type: 'tool_use',
  id: id || `toolu_${index}_${Date.now()}`,
  name: name ?? '',
  input: {},
});
const inputJsonDelta = (index: number, partial: string): SseEvent =>
  eventOf({ type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: partial } });
/** Held-back calls go out by the upstream's index; calls keyed by id (no index) after them, as they came. */
const callOrder = (key: ToolCallKey) => (typeof key === 'number' ? key : Number.MAX_SAFE_INTEGER);

/**
 * Feed it every chunk in order (`push`), then `finish()` for the open block's stop, then `closing(usage)` for
 * the last two events. Each tool call (by OpenAI index) is one tool_use block. Anthropic's clients take a block
 * as final at its content_block_stop, so blocks go one after another: while a call's block is open, other calls
 * (some upstreams interleave parallel calls' fragments) wait, and go out whole, in index order, when it closes.
 */
export class MessagesStreamTranslator {
  #started = false;
  #nextIndex = 0;
  #open: { block: OpenBlock; index: number } | undefined;
  /** tool_use block index by the upstream's tool-call index (or id, for upstreams that send no index) */
  #toolBlocks = new Map<ToolCallKey, number>();
  /** calls that came while another call's block was open, by the same key */
  #waitingCalls = new Map<ToolCallKey, WaitingCall>();
  #lastToolKey: ToolCallKey | undefined;
  #finishReason: unknown;
  #refused = false;

  constructor(
    private readonly model: string,
    private readonly inputTokens = 0,
  ) {}

  /** Whether message_start went out (anything reached the client). */
  get started(): boolean {
    return this.#started;
  }

  #start(chunkId: unknown): SseEvent[] {
    if (this.#started) return [];
    this.#started = true;
    const message = {
      id: messageIdOf(chunkId),
      type: 'message',
      role: 'assistant',
      model: this.model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: { input_tokens: this.inputTokens, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 0 },
    };
    return [eventOf({ type: 'message_start', message }), eventOf({ type: 'ping' })];
  }

  /** The open block's stop, and after a tool call's, the calls that waited for it. */
  #stopOpen(): SseEvent[] {
    if (!this.#open) return [];
    const { index } = this.#open;
    this.#open = undefined;
    return [eventOf({ type: 'content_block_stop', index }), ...this.#releaseWaitingCalls()];
  }

  /** Each waiting call as a whole block: start, its fragments, stop. */
  #releaseWaitingCalls(): SseEvent[] {
    const calls = [...this.#waitingCalls].sort(([a], [b]) => callOrder(a) - callOrder(b));
    this.#waitingCalls.clear();
    return calls.flatMap(([key, call]) => {
      const index = this.#nextIndex++;
      this.#toolBlocks.set(key, index);
      return [
        eventOf({ type: 'content_block_start', index, content_block: toolUseBlock(index, call.id, call.name) }),
        ...call.fragments.map((partial) => inputJsonDelta(index, partial)),
        eventOf({ type: 'content_block_stop', index }),
      ];
    });
  }

  #openBlock(block: OpenBlock, contentBlock: Json): SseEvent[] {
    const events = this.#stopOpen();
    const index = this.#nextIndex++;
    this.#open = { block, index };
    events.push(eventOf({ type: 'content_block_start', index, content_block: contentBlock }));
    return events;
  }

  /** The open block of this kind, or a new one. */
  #ensure(kind: 'thinking' | 'text'): { events: SseEvent[]; index: number } {
    if (this.#open?.block.kind === kind) return { events: [], index: this.#open.index };
    const start = kind === 'text' ? { type: 'text', text: '' } : { type: 'thinking', thinking: '', signature: '' };
    const events = this.#openBlock({ kind }, start);
    return { events, index: this.#open!.index };
  }

  /** A fragment of a call: live into its open block, held back while another call's block is open. */
  #toolDelta(call: ToolDelta): SseEvent[] {
    const key = toolCallKeyOf(call, this.#lastToolKey);
    this.#lastToolKey = key;
    const partial = call.function?.arguments;
    const waiting = this.#waitingCalls.get(key);
    if (waiting) {
      if (partial) waiting.fragments.push(partial);
      return [];
    }
    const index = this.#toolBlocks.get(key);
    if (index !== undefined) return partial ? [inputJsonDelta(index, partial)] : [];
    if (this.#open?.block.kind === 'tool') {
      this.#waitingCalls.set(key, { id: call.id, name: call.function?.name, fragments: partial ? [partial] : [] });
      return [];
    }
    // no call's block is open, so nothing waits: this block's index is the next one
    const events = this.#openBlock({ kind: 'tool' }, toolUseBlock(this.#nextIndex, call.id, call.function?.name));
    const opened = this.#open!.index;
    this.#toolBlocks.set(key, opened);
    if (partial) events.push(inputJsonDelta(opened, partial));
    return events;
  }

  push(chunk: ChatChunk): SseEvent[] {
    const choice = chunk.choices?.[0];
    if (!choice) return [];
    const delta = (choice.delta ?? {}) as Json;
    const events: SseEvent[] = [];
    const thinking = reasoningTextOf(delta);
    if (thinking !== '') {
      const block = this.#ensure('thinking');
      events.push(
        ...block.events,
        eventOf({ type: 'content_block_delta', index: block.index, delta: { type: 'thinking_delta', thinking } }),
      );
    }
    const refusal = refusalTextOf(delta);
    if (refusal !== '') this.#refused = true;
    const text = (typeof delta.content === 'string' ? delta.content : '') + refusal;
    if (text !== '') {
      const block = this.#ensure('text');
      events.push(...block.events, eventOf({ type: 'content_block_delta', index: block.index, delta: { type: 'text_delta', text } }));
    }
    const calls: ToolDelta[] = Array.isArray(delta.tool_calls)
      ? delta.tool_calls
      : delta.function_call
        ? [{ index: 0, function: delta.function_call as ToolDelta['function'] }]
        : [];
    for (const call of calls) events.push(...this.#toolDelta(call));
    if (choice.finish_reason) this.#finishReason = choice.finish_reason;
    return events.length > 0 ? [...this.#start(chunk.id), ...events] : events;
  }

  /** The end of the upstream's stream: message_start if nothing came, and the open block's stop. */
  finish(): SseEvent[] {
    return [...this.#start(undefined), ...this.#stopOpen()];
  }

  /** message_delta with the stop reason and the billed usage, and message_stop. */
  closing(usage: Json): SseEvent[] {
    return [
      eventOf({
        type: 'message_delta',
        delta: { stop_reason: this.#refused ? 'refusal' : stopReasonOf(this.#finishReason), stop_sequence: null },
        usage,
      }),
      eventOf({ type: 'message_stop' }),
    ];
  }
}
