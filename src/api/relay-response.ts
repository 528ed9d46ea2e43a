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
/** Silence after which the web side asks BullMQ whether the job is still queued or running. */
const SILENCE_CHECK_MS = 5_000;
/** A job that just finished may still have its last message in flight on the subscriber connection. */
const LAST_MESSAGE_GRACE_MS = 1_000;

/**
 * A client that goes away cancels the job (the worker aborts its upstream call and settles for what was
 * produced) and stops this request's wait at once.
 */
function cancelOnDisconnect(ctx: Context, svc: WebServices, relay: RelayStream): () => void {
  const onClose = () => {
    if (ctx.res.writableFinished) return;
    relay.end();
    void svc.relay.cancel(ctx.state.requestId).catch(() => undefined);
  };
  ctx.res.once('close', onClose);
  return () => ctx.res.off('close', onClose);
}

const timeoutError = () => new ApiError('upstream_timeout', 'the upstream did not answer before the deadline');
const interruptedError = () => new ApiError('upstream_error', 'the stream was interrupted', { fields: { upstream_status: 0 } });
const lostError = () =>
  new ApiError('upstream_error', 'the worker processing this request stopped without an answer; please retry', { fields: { upstream_status: 0 } });

/** True when BullMQ says the job has ended (completed, failed, or removed), i.e. no message will come any more. */
async function jobIsOver(svc: WebServices, requestId: string): Promise<boolean> {
  for (const queue of svc.jobs.all()) {
    const state = await queue.getJobState(requestId);
    if (state !== 'unknown') return state === 'completed' || state === 'failed';
  }
  return true;
}

/**
 * The job's next message within `waitMs`: `silent` when none came (or the client left), `lost` when the job
 * ended without sending one — a worker died and BullMQ gave the job up — so the client is not kept waiting
 * until the deadline. Checked every SILENCE_CHECK_MS of silence.
 */
async function nextMessage(svc: WebServices, relay: RelayStream, requestId: string, waitMs: number): Promise<RelayMessage | 'silent' | 'lost'> {
  const until = Date.now() + waitMs;
  for (;;) {
    const message = await relay.next(Math.max(0, Math.min(SILENCE_CHECK_MS, until - Date.now())));
    if (message) return message;
    if (relay.isEnded || Date.now() >= until) return 'silent';
    if (await jobIsOver(svc, requestId)) return (await relay.next(LAST_MESSAGE_GRACE_MS)) ?? 'lost';
  }
}

/** Non-stream: await the job's single `done` (or `error`) message and answer it as JSON. */
export async function respondWithResult(ctx: Context, svc: WebServices, relay: RelayStream, deadlineAt: number): Promise<void> {
  const stopWatching = cancelOnDisconnect(ctx, svc, relay);
  try {
    for (;;) {
      const message = await nextMessage(svc, relay, ctx.state.requestId, Math.max(0, deadlineAt + WORKER_GRACE_MS - Date.now()));
      if (relay.isEnded) return; // the client is gone; nobody reads an answer
      if (message === 'lost') throw lostError();
      if (message === 'silent') {
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
  const stopWatching = cancelOnDisconnect(ctx, svc, relay);
  const sse = new SseWriter(ctx);
  let expectedSeq = 0;
  let chunksSent = 0;
  const giveUpAt = deadlineAt + WORKER_GRACE_MS;
  try {
    for (;;) {
      const wait = Math.min(sse.started ? KEEPALIVE_MS : FIRST_BYTE_MS, Math.max(0, giveUpAt - Date.now()));
      const message = await nextMessage(svc, relay, ctx.state.requestId, wait);
      if (relay.isEnded || !ctx.res.writable) return;
      if (message === 'lost') return sse.fail(lostError());
      if (message === 'silent') {
        if (Date.now() >= giveUpAt) {
          void svc.relay.cancel(ctx.state.requestId).catch(() => undefined);
          return sse.fail(timeoutError());
        }
        sse.comment('keep-alive');
        continue;
      }
      // an error ends the stream whatever came before it (e.g. a re-run job refusing to start over)
      if (message.t === 'error') return sse.fail(ApiError.fromWire(message.error));
      if (message.seq !== expectedSeq) {
        // seq 0 again means BullMQ re-ran a stalled job; fine only if the client has seen nothing of the first run
        if (message.seq !== 0 || chunksSent > 0) {
          void svc.relay.cancel(ctx.state.requestId).catch(() => undefined);
          return sse.fail(interruptedError());
        }
      }
      expectedSeq = message.seq + 1;
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
