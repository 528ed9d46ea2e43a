import { type ToolCallKey, toolCallKeyOf } from '../tool-call-key.js';
import {
  functionCallItem,
  itemIds,
  messageItem,
  outputText,
  type ResponseStatus,
  type ResponsesEcho,
  reasoningItem,
  reasoningTextOf,
  responseObject,
  responsesUsage,
  statusOf,
} from './response.js';

/**
 * Chat completion chunks → the Responses stream events (SPEC §1b), each with its `sequence_number`. The
 * first content opens the stream (`response.created`, `response.in_progress`), each output item opens with
 * `response.output_item.added` and streams its deltas (a message's text and its refusal, `delta.refusal`, each
 * in its own content part); `finish` closes every item in output order and ends
 * with `response.completed` (or `response.incomplete`) carrying the whole response and its usage. Tool
 * calls are keyed by their chat `index` (without one, by id or as the last call's: ../tool-call-key.ts), so
 * interleaved fragments of several calls each reach their own item.
 */

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

export interface StreamEvent {
  event: string;
  data: Json;
}

/** A content part of a message (its text, or a refusal) or of a reasoning item. */
type PartType = 'output_text' | 'refusal' | 'reasoning_text';
interface ContentPart {
  type: PartType;
  text: string;
}
interface TextItem {
  kind: 'message' | 'reasoning';
  index: number;
  id: string;
  parts: ContentPart[];
}
interface CallItem {
  kind: 'call';
  index: number;
  id: string;
  callId: string;
  name: string;
  args: string;
}
type OpenItem = TextItem | CallItem;

/** The events of each part type, and the field its `.done` event and its part carry the text in. */
const PART_EVENTS: Record<PartType, { delta: string; done: string; field: 'text' | 'refusal' }> = {
  output_text: { delta: 'response.output_text.delta', done: 'response.output_text.done', field: 'text' },
  refusal: { delta: 'response.refusal.delta', done: 'response.refusal.done', field: 'refusal' },
  reasoning_text: { delta: 'response.reasoning_text.delta', done: 'response.reasoning_text.done', field: 'text' },
};

const partOf = ({ type, text }: ContentPart): Json =>
  type === 'output_text' ? outputText(text) : { type, [PART_EVENTS[type].field]: text };

/** OpenAI's text events carry logprobs (none here); refusal and reasoning events do not. */
const logprobsOf = (type: PartType): Json => (type === 'output_text' ? { logprobs: [] } : {});

export class ResponsesStreamEncoder {
  private sequence = 0;
  private started = false;
  private readonly items: OpenItem[] = [];
  private message: TextItem | undefined;
  private reasoning: TextItem | undefined;
  private readonly calls = new Map<ToolCallKey, CallItem>();
  private lastCallKey: ToolCallKey | undefined;
  private finishReason: unknown;
  private readonly ids: ReturnType<typeof itemIds>;

  constructor(private readonly echo: ResponsesEcho) {
    this.ids = itemIds(echo.id);
  }

  /** Events emitted so far (the next event's sequence_number). */
  get emitted(): number {
    return this.sequence;
  }

  private emit(out: StreamEvent[], type: string, fields: Json): void {
    out.push({ event: type, data: { type, sequence_number: this.sequence++, ...fields } });
  }

  private start(out: StreamEvent[]): void {
    if (this.started) return;
    this.started = true;
    const response = responseObject(this.echo, 'in_progress', [], null);
    this.emit(out, 'response.created', { response });
    this.emit(out, 'response.in_progress', { response });
  }

  private openItem(out: StreamEvent[], kind: 'message' | 'reasoning'): TextItem {
    const item: TextItem = { kind, index: this.items.length, id: kind === 'message' ? this.ids.message : this.ids.reasoning, parts: [] };
    this.items.push(item);
    if (kind === 'message') this.message = item;
    else this.reasoning = item;
    const added = kind === 'message' ? messageItem(item.id, 'in_progress', []) : reasoningItem(item.id, 'in_progress', undefined);
    this.emit(out, 'response.output_item.added', { output_index: item.index, item: added });
    return item;
  }

  private openPart(out: StreamEvent[], item: TextItem, type: PartType): ContentPart {
    const part: ContentPart = { type, text: '' };
    item.parts.push(part);
    const where = { item_id: item.id, output_index: item.index, content_index: item.parts.length - 1 };
    this.emit(out, 'response.content_part.added', { ...where, part: partOf(part) });
    return part;
  }

  /** A text delta into the last part of its item when that part is of its type, else into a new part. */
  private text(out: StreamEvent[], type: PartType, delta: string): void {
    const kind = type === 'reasoning_text' ? 'reasoning' : 'message';
    const item = (kind === 'message' ? this.message : this.reasoning) ?? this.openItem(out, kind);
    const last = item.parts.at(-1);
    const part = last?.type === type ? last : this.openPart(out, item, type);
    part.text += delta;
    const where = { item_id: item.id, output_index: item.index, content_index: item.parts.length - 1 };
    this.emit(out, PART_EVENTS[type].delta, { ...where, delta, ...logprobsOf(type) });
  }

  private toolCall(out: StreamEvent[], fragment: Json): void {
    const key = toolCallKeyOf(fragment, this.lastCallKey);
    this.lastCallKey = key;
    const fn = isObject(fragment.function) ? fragment.function : {};
    let call = this.calls.get(key);
    if (!call) {
      call = {
        kind: 'call',
        index: this.items.length,
        id: this.ids.call(this.calls.size),
        callId: typeof fragment.id === 'string' ? fragment.id : `call_${this.echo.id.slice(5)}_${this.calls.size}`,
        name: typeof fn.name === 'string' ? fn.name : '',
        args: '',
      };
      this.calls.set(key, call);
      this.items.push(call);
      const added = functionCallItem(call.id, 'in_progress', call.callId, call.name, '');
      this.emit(out, 'response.output_item.added', { output_index: call.index, item: added });
    } else if (call.name === '' && typeof fn.name === 'string') call.name = fn.name;
    if (typeof fn.arguments === 'string' && fn.arguments !== '') {
      call.args += fn.arguments;
      this.emit(out, 'response.function_call_arguments.delta', { item_id: call.id, output_index: call.index, delta: fn.arguments });
    }
  }

  /** The events one chat chunk gives (none for a usage-only or empty chunk). */
  push(chunk: Json): StreamEvent[] {
    const out: StreamEvent[] = [];
    const choice = Array.isArray(chunk.choices) && isObject(chunk.choices[0]) ? chunk.choices[0] : undefined;
    if (!choice) return out;
    if (choice.finish_reason != null) this.finishReason = choice.finish_reason;
    const delta = isObject(choice.delta) ? choice.delta : {};
    const reasoning = reasoningTextOf(delta);
    const content = typeof delta.content === 'string' && delta.content !== '' ? delta.content : undefined;
    const refusal = typeof delta.refusal === 'string' && delta.refusal !== '' ? delta.refusal : undefined;
    const calls = Array.isArray(delta.tool_calls) ? delta.tool_calls.filter(isObject) : [];
    if (reasoning === undefined && content === undefined && refusal === undefined && calls.length === 0) return out;
    this.start(out);
    if (reasoning !== undefined) this.text(out, 'reasoning_text', reasoning);
    if (content !== undefined) this.text(out, 'output_text', content);
    if (refusal !== undefined) this.text(out, 'refusal', refusal);
    for (const call of calls) this.toolCall(out, call);
    return out;
  }

  private close(out: StreamEvent[], item: OpenItem, status: ResponseStatus): Json {
    if (item.kind === 'call') {
      this.emit(out, 'response.function_call_arguments.done', {
        item_id: item.id,
        output_index: item.index,
        name: item.name,
        arguments: item.args,
      });
      const done = functionCallItem(item.id, status, item.callId, item.name, item.args);
      this.emit(out, 'response.output_item.done', { output_index: item.index, item: done });
      return done;
    }
    for (const [contentIndex, part] of item.parts.entries()) {
      const where = { item_id: item.id, output_index: item.index, content_index: contentIndex };
      const { done, field } = PART_EVENTS[part.type];
      this.emit(out, done, { ...where, [field]: part.text, ...logprobsOf(part.type) });
      this.emit(out, 'response.content_part.done', { ...where, part: partOf(part) });
    }
    const done =
      item.kind === 'message' ? messageItem(item.id, status, item.parts.map(partOf)) : reasoningItem(item.id, status, item.parts[0]?.text);
    this.emit(out, 'response.output_item.done', { output_index: item.index, item: done });
    return done;
  }

  /**
   * The closing events: every open item's `.done` events in output order, then `response.completed` (or
   * `response.incomplete` when the answer hit its token limit) with the usage (chat usage, cost included).
   * Also returns the final response object (what `store` keeps).
   */
  finish(chatUsage: Json): { events: StreamEvent[]; response: Json } {
    const out: StreamEvent[] = [];
    this.start(out);
    const status = statusOf(this.finishReason);
    // the item the token limit cut is `incomplete`, as OpenAI marks it; the ones before it were finished
    const last = this.items.length - 1;
    const output = this.items.map((item, i) => this.close(out, item, i === last ? status : 'completed'));
    const response = responseObject(this.echo, status, output, responsesUsage(chatUsage), this.finishReason);
    this.emit(out, status === 'completed' ? 'response.completed' : 'response.incomplete', { response });
    return { events: out, response };
  }

  /**
   * The response as it stood when its stream was cut, every item `incomplete`: `cancelled` when its client
   * left, else `failed` with the error its client got. What `store` keeps of a stream billed for part of an
   * answer; no events, since the client is gone or has had its error event.
   */
  cut(chatUsage: Json, failure: string | null): Json {
    const unsent: StreamEvent[] = [];
    const output = this.items.map((item) => this.close(unsent, item, 'incomplete'));
    const error = failure === null ? null : { code: 'server_error' as const, message: failure };
    return responseObject(this.echo, error ? 'failed' : 'cancelled', output, responsesUsage(chatUsage), this.finishReason, error);
  }
}

/**
 * The `error` event a stream ends with once it has started (SPEC §2): OpenAI's ResponseErrorEvent fields,
 * plus the SPEC §2 `error` object, which the OpenAI SDKs raise as an APIError.
 */
export function errorEvent(
  error: { code: string; message: string; param: string | null },
  sequenceNumber: number,
  wire: Json,
): StreamEvent {
  return {
    event: 'error',
    data: { type: 'error', code: error.code, message: error.message, param: error.param, sequence_number: sequenceNumber, ...wire },
  };
}
