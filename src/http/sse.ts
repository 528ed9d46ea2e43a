import type { ServerResponse } from 'node:http';
import type { ApiError } from './errors.js';
import type { AppContext } from './state.js';

/** One server-sent event: `event` is its name (absent: an unnamed `data:` event, as chat streams use). */
export interface SseEvent {
  event?: string;
  data: unknown;
}

const NOTHING = () => {};

/**
 * Server-sent events on a Koa response. Nothing is written until the first event or comment; until then
 * `fail` throws, so the error boundary answers with an ordinary HTTP error and status.
 */
export class SseWriter {
  started = false;
  /** Events written so far (comments not counted): a Responses error event's sequence_number. */
  events = 0;
  /** When the last event or comment was written, epoch ms (0: nothing yet). */
  lastWriteAt = 0;
  /**
   * `onStart` is called once the 200 and the first event (or comment) went out; the writer lets go of it
   * then, so a held stream keeps nothing of whoever waited for its start.
   */
  constructor(
    private readonly ctx: AppContext,
    private onStart: () => void,
  ) {}

  /** Whether the response still takes writes (its client is there and it has not ended). */
  get writable(): boolean {
    return this.ctx.res.writable;
  }

  private start(): void {
    if (this.started) return;
    this.started = true;
    const onStart = this.onStart;
    this.onStart = NOTHING;
    onStart();
    this.ctx.respond = false;
    this.ctx.res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      // a stream whose 200 goes out once its process is stopping closes its connection when it ends, as
      // every other answer then does (src/http/close-when-stopping.ts runs after this header went out)
      connection: this.ctx.services.stopping ? 'close' : 'keep-alive',
      'x-accel-buffering': 'no',
    });
    flattenHeaderBlock(this.ctx.res);
  }

  comment(text: string): void {
    this.start();
    this.lastWriteAt = Date.now();
    this.ctx.res.write(`: ${text}\n\n`);
  }

  /** An event; named (`event: <name>`) when `name` is given. */
  event(name: string | undefined, payload: unknown): void {
    this.start();
    this.events++;
    this.lastWriteAt = Date.now();
    this.ctx.res.write(frameOf({ event: name, data: payload }));
  }

  data(payload: unknown): void {
    this.event(undefined, payload);
  }

  /** Chat's end: `data: [DONE]`. */
  done(): void {
    this.start();
    this.ctx.res.end('data: [DONE]\n\n');
  }

  /** The end of a stream whose format has no end marker (Messages, Responses: their last event says it). */
  end(): void {
    this.start();
    this.ctx.res.end();
  }

  /**
   * Before the stream started: throw (an HTTP error answer). After: one SSE error event (chat's by default:
   * `data: {"error":{…}}`), then the end.
   */
  fail(error: ApiError, event: SseEvent = { data: error.toJSON() }): void {
    if (!this.started) throw error;
    this.ctx.res.end(frameOf(event));
  }
}

/**
 * Node keeps a response's header block (`_header`, which libraries such as morgan read too) for as long as
 * the response is open, as it concatenated it: ~55 pieces for a stream's 14 headers. Reading one character
 * makes V8 flatten it in place into one string: a held stream keeps 0.9 KB less (BENCHMARKS.md, twelfth round).
 */
function flattenHeaderBlock(res: ServerResponse): void {
  const block: unknown = Reflect.get(res, '_header');
  if (typeof block === 'string') block.charCodeAt(0);
}

const frameOf = ({ event, data }: SseEvent) =>
  event === undefined ? `data: ${JSON.stringify(data)}\n\n` : `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
