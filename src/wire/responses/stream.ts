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
 * `response.output_item.added` and streams its deltas; `finish` closes every item in output order and ends
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

interface TextItem {
  kind: 'message' | 'reasoning';
  index: number;
  id: string;
  text: string;
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

  private openText(out: StreamEvent[], kind: 'message' | 'reasoning'): TextItem {
    const item: TextItem = { kind, index: this.items.length, id: kind === 'message' ? this.ids.message : this.ids.reasoning, text: '' };
    this.items.push(item);
    const added = kind === 'message' ? messageItem(item.id, 'in_progress', []) : reasoningItem(item.id, 'in_progress', undefined);
    this.emit(out, 'response.output_item.added', { output_index: item.index, item: added });
    const part = kind === 'message' ? outputText('') : { type: 'reasoning_text', text: '' };
    this.emit(out, 'response.content_part.added', { item_id: item.id, output_index: item.index, content_index: 0, part });
    return item;
  }

  private text(out: StreamEvent[], kind: 'message' | 'reasoning', delta: string): void {
    let item = kind === 'message' ? this.message : this.reasoning;
    if (!item) {
      item = this.openText(out, kind);
      if (kind === 'message') this.message = item;
      else this.reasoning = item;
    }
    item.text += delta;
    const type = kind === 'message' ? 'response.output_text.delta' : 'response.reasoning_text.delta';
    this.emit(out, type, {
      item_id: item.id,
      output_index: item.index,
      content_index: 0,
      delta,
      ...(kind === 'message' && { logprobs: [] }),
    });
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
    const calls = Array.isArray(delta.tool_calls) ? delta.tool_calls.filter(isObject) : [];
    if (reasoning === undefined && content === undefined && calls.length === 0) return out;
    this.start(out);
    if (reasoning !== undefined) this.text(out, 'reasoning', reasoning);
    if (content !== undefined) this.text(out, 'message', content);
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
    const where = { item_id: item.id, output_index: item.index, content_index: 0 };
    const message = item.kind === 'message';
    this.emit(out, message ? 'response.output_text.done' : 'response.reasoning_text.done', {
      ...where,
      text: item.text,
      ...(message && { logprobs: [] }),
    });
    const part = message ? outputText(item.text) : { type: 'reasoning_text', text: item.text };
    this.emit(out, 'response.content_part.done', { ...where, part });
    const done = message ? messageItem(item.id, status, [part]) : reasoningItem(item.id, status, item.text);
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
