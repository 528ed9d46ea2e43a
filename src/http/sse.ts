import type { Context } from 'koa';
import type { ApiError } from './errors.js';

/**
 * Server-sent events on a Koa response. Nothing is written until the first event or comment; until then
 * `fail` throws, so the error boundary answers with an ordinary HTTP error and status.
 */
export class SseWriter {
  started = false;

  constructor(private readonly ctx: Context) {}

  private start(): void {
    if (this.started) return;
    this.started = true;
    this.ctx.respond = false;
    this.ctx.res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
  }

  comment(text: string): void {
    this.start();
    this.ctx.res.write(`: ${text}\n\n`);
  }

  data(payload: unknown): void {
    this.start();
    this.ctx.res.write(`data: ${JSON.stringify(payload)}\n\n`);
  }

  done(): void {
    this.start();
    this.ctx.res.end('data: [DONE]\n\n');
  }

  /** Before the stream started: throw (an HTTP error answer). After: one SSE error event, then the end. */
  fail(error: ApiError): void {
    if (!this.started) throw error;
    this.ctx.res.end(`data: ${JSON.stringify(error.toJSON())}\n\n`);
  }
}
