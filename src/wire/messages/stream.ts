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
const emptyBlock = (kind: 'thinking' | 'text'): Json =>
  kind === 'text' ? { type: 'text', text: '' } : { type: 'thinking', thinking: '', signature: '' };
const contentDelta = (kind: 'thinking' | 'text', index: number, text: string): SseEvent =>
  eventOf({
    type: 'content_block_delta',
    index,
    delta: kind === 'text' ? { type: 'text_delta', text } : { type: 'thinking_delta', thinking: text },
  });
/** Held-back calls go out by the upstream's index; calls keyed by id (no index) after them, as they came. */
const callOrder = (key: ToolCallKey) => (typeof key === 'number' ? key : Number.MAX_SAFE_INTEGER);

/**
 * Feed it every chunk in order (`push`), then `finish()` for the open block's stop, then `closing(usage)` for
 * the last two events. Each tool call (by OpenAI index) is one tool_use block. Anthropic's clients take a block
 * as final at its content_block_stop, so blocks go one after another, and a block once stopped gets nothing
 * more: the first call's block stays open, live, to the end of the stream; what comes meanwhile for another
 * block (other calls: some upstreams interleave parallel calls' fragments; text or thinking after a call) waits,
 * and goes out whole at the end, the calls in index order, then the text and thinking in the order they came.
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
  /** text and thinking that came while a call's block was open, in order (a run of one kind is one block) */
  #waitingContent: Array<{ kind: 'thinking' | 'text'; text: string }> = [];
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

  /** Text or thinking: into the open block of its kind, or a new one; held back while a call's block is open. */
  #content(kind: 'thinking' | 'text', text: string): SseEvent[] {
    if (this.#open?.block.kind === 'tool') {
      const last = this.#waitingContent.at(-1);
      if (last?.kind === kind) last.text += text;
      else this.#waitingContent.push({ kind, text });
      return [];
    }
    const events = this.#open?.block.kind === kind ? [] : this.#openBlock({ kind }, emptyBlock(kind));
    events.push(contentDelta(kind, this.#open!.index, text));
    return events;
  }

  /** Each waiting text or thinking as a whole block. */
  #releaseWaitingContent(): SseEvent[] {
    const content = this.#waitingContent.splice(0);
    return content.flatMap(({ kind, text }) => {
      const index = this.#nextIndex++;
      return [
        eventOf({ type: 'content_block_start', index, content_block: emptyBlock(kind) }),
        contentDelta(kind, index, text),
        eventOf({ type: 'content_block_stop', index }),
      ];
    });
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
    if (thinking !== '') events.push(...this.#content('thinking', thinking));
    const refusal = refusalTextOf(delta);
    if (refusal !== '') this.#refused = true;
    const text = (typeof delta.content === 'string' ? delta.content : '') + refusal;
    if (text !== '') events.push(...this.#content('text', text));
    const calls: ToolDelta[] = Array.isArray(delta.tool_calls)
      ? delta.tool_calls
      : delta.function_call
        ? [{ index: 0, function: delta.function_call as ToolDelta['function'] }]
        : [];
    for (const call of calls) events.push(...this.#toolDelta(call));
    if (choice.finish_reason) this.#finishReason = choice.finish_reason;
    return events.length > 0 ? [...this.#start(chunk.id), ...events] : events;
  }

  /** The end of the upstream's stream: message_start if nothing came, the open block's stop, and what waited. */
  finish(): SseEvent[] {
    return [...this.#start(undefined), ...this.#stopOpen(), ...this.#releaseWaitingContent()];
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
