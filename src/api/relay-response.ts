import type { Context } from 'koa';
import { formatUsd } from '../billing/money.js';
import { ApiError } from '../http/errors.js';
import { SseWriter } from '../http/sse.js';
import type { RelayMessage } from '../queue/jobs.js';
import type { RelayStream } from '../queue/relay.js';
import type { WebServices } from '../services.js';

/** How long the web side waits beyond the job's own deadline before giving up on a silent worker. */
const WORKER_GRACE_MS = 30_000;
const FIRST_BYTE_MS = 10_000;
const KEEPALIVE_MS = 15_000;

/** A client that goes away cancels the job: the worker aborts its upstream call and settles for what was produced. */
function cancelOnDisconnect(ctx: Context, svc: WebServices): () => void {
  const onClose = () => {
    if (!ctx.res.writableFinished) void svc.relay.cancel(ctx.state.requestId).catch(() => undefined);
  };
  ctx.res.once('close', onClose);
  return () => ctx.res.off('close', onClose);
}

const timeoutError = () => new ApiError('upstream_timeout', 'the upstream did not answer before the deadline');

/** Non-stream: await the job's single `done` (or `error`) message and answer it as JSON. */
export async function respondWithResult(ctx: Context, svc: WebServices, relay: RelayStream, deadlineAt: number): Promise<void> {
  const stopWatching = cancelOnDisconnect(ctx, svc);
  try {
    for (;;) {
      const message = await relay.next(Math.max(0, deadlineAt + WORKER_GRACE_MS - Date.now()));
      if (!message) {
        void svc.relay.cancel(ctx.state.requestId).catch(() => undefined);
        throw timeoutError();
      }
      if (message.t === 'error') throw ApiError.fromWire(message.error);
      if (message.t === 'done') {
        ctx.set('x-eastx-cost-usd', formatUsd(BigInt(message.costNano)));
        ctx.body = message.result;
        return;
      }
    }
  } finally {
    stopWatching();
    svc.relay.close(ctx.state.requestId);
  }
}

/**
 * Stream: relay chunks as SSE (SPEC §1). The 200 goes out with the first chunk or after 10 s of waiting;
 * before that every failure is an ordinary HTTP error, after it an SSE error event.
 */
export async function respondWithStream(
  ctx: Context,
  svc: WebServices,
  relay: RelayStream,
  deadlineAt: number,
  includeUsage: boolean,
): Promise<void> {
  const stopWatching = cancelOnDisconnect(ctx, svc);
  const sse = new SseWriter(ctx);
  let expectedSeq = 0;
  let chunksSent = 0;
  const giveUpAt = deadlineAt + WORKER_GRACE_MS;
  try {
    for (;;) {
      const wait = Math.min(sse.started ? KEEPALIVE_MS : FIRST_BYTE_MS, Math.max(0, giveUpAt - Date.now()));
      const message: RelayMessage | undefined = await relay.next(wait);
      if (!ctx.res.writable) return;
      if (!message) {
        if (Date.now() >= giveUpAt) {
          void svc.relay.cancel(ctx.state.requestId).catch(() => undefined);
          return sse.fail(timeoutError());
        }
        sse.comment('keep-alive');
        continue;
      }
      if (message.seq !== expectedSeq) {
        // seq 0 again means BullMQ re-ran a stalled job; fine only if the client has seen nothing of the first run
        if (message.seq !== 0 || chunksSent > 0) {
          void svc.relay.cancel(ctx.state.requestId).catch(() => undefined);
          return sse.fail(new ApiError('upstream_error', 'the stream was interrupted', { fields: { upstream_status: 0 } }));
        }
      }
      expectedSeq = message.seq + 1;
      if (message.t === 'error') return sse.fail(ApiError.fromWire(message.error));
      if (message.t === 'chunk') {
        sse.data(message.chunk);
        chunksSent++;
        continue;
      }
      if (includeUsage && message.usageChunk) sse.data(message.usageChunk);
      return sse.done();
    }
  } finally {
    stopWatching();
    svc.relay.close(ctx.state.requestId);
  }
}
