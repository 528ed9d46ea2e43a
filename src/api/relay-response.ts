import type { Context } from 'koa';
import { formatUsd } from '../billing/money.js';
import { releaseHold } from '../billing/settlement.js';
import { billingState, deferVoid, reverseCharge } from '../billing/unbillable.js';
import { ApiError } from '../http/errors.js';
import { SseWriter } from '../http/sse.js';
import { log } from '../log.js';
import type { RelayMessage } from '../queue/jobs.js';
import type { RelayStream } from '../queue/relay.js';
import type { WebServices } from '../services.js';

/** How long the web side waits beyond the job's own deadline before giving up on a silent worker. */
const WORKER_GRACE_MS = 30_000;
const FIRST_BYTE_MS = 10_000;
const KEEPALIVE_MS = 15_000;
/** Silence after which the web side looks for the job's kept final message and asks BullMQ about the job. */
const SILENCE_CHECK_MS = 3_000;
/**
 * A job BullMQ no longer has as queued or running is lost once no heartbeat came for this long either: a
 * worker still running a job BullMQ lost track of (Redis restarted) sends one at least every ~3 s.
 */
const LOST_AFTER_MS = 5_000;
/** This process's relay subscription down this long: Redis is unreachable, in-flight requests answer 500. */
const REDIS_DOWN_MS = 2_000;
/** A request found charged when the web side was about to answer an error waits this long for its answer. */
const ANSWER_WAIT_MS = 3_000;

type DoneMessage = Extract<RelayMessage, { t: 'done' }>;
type Wait = RelayMessage | 'silent' | 'lost' | 'unreachable';

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
/** Relay messages went missing (Redis trouble): eastx's own failure, not the upstream's. */
const interruptedError = () => new ApiError('internal_error', 'the stream was interrupted inside eastx; please retry');
const lostError = () => new ApiError('internal_error', 'eastx lost track of this request (its queue was reset); please retry');
const unreachableError = () => new ApiError('internal_error', 'eastx cannot reach its Redis; please retry');

/** The error a wait ended with, decided by this process; a timeout also cancels the job. */
function errorOf(ctx: Context, svc: WebServices, wait: 'silent' | 'lost' | 'unreachable'): ApiError {
  if (wait === 'lost') return lostError();
  if (wait === 'unreachable') return unreachableError();
  void svc.relay.cancel(ctx.state.requestId).catch(() => undefined);
  return timeoutError();
}

/** True when BullMQ no longer has the job queued or running (completed, failed, or gone). */
async function jobIsOver(svc: WebServices, requestId: string): Promise<boolean> {
  for (const queue of svc.jobs.all()) {
    const state = await queue.getJobState(requestId);
    if (state !== 'unknown') return state === 'completed' || state === 'failed';
  }
  return true;
}

/**
 * The job's next message within `waitMs` (heartbeats only prove the job alive): `silent` when none came
 * (or the client left); `lost` when BullMQ no longer has the job, no heartbeat says a worker still runs it,
 * and no final message was kept for it; `unreachable` when Redis is. After every SILENCE_CHECK_MS of
 * silence, and whenever the relay subscription came back, it looks for the job's kept final message.
 */
async function nextMessage(svc: WebServices, relay: RelayStream, requestId: string, waitMs: number): Promise<Wait> {
  const until = Date.now() + waitMs;
  let overSince: number | undefined;
  for (;;) {
    const downMs = svc.relay.downForMs();
    const pause = downMs !== undefined ? REDIS_DOWN_MS - downMs : overSince !== undefined ? 1_000 : SILENCE_CHECK_MS;
    const message = await relay.next(Math.max(0, Math.min(pause, until - Date.now())));
    if (message?.t === 'hb') {
      overSince = undefined;
      continue;
    }
    if (message) return message;
    if (relay.isEnded || Date.now() >= until) return 'silent';
    const down = svc.relay.downForMs();
    if (down !== undefined) {
      if (down >= REDIS_DOWN_MS) return 'unreachable';
      continue;
    }
    try {
      const kept = await svc.relay.keptFinal(requestId);
      if (kept) return kept;
      if (!(await jobIsOver(svc, requestId))) {
        overSince = undefined;
        continue;
      }
    } catch {
      return 'unreachable';
    }
    overSince ??= Date.now();
    if (Date.now() - overSince >= LOST_AFTER_MS) return 'lost';
  }
}

/** The job's `done` message if it comes (live or kept) within ANSWER_WAIT_MS. */
async function awaitAnswer(svc: WebServices, relay: RelayStream, requestId: string): Promise<DoneMessage | undefined> {
  const until = Date.now() + ANSWER_WAIT_MS;
  while (Date.now() < until && !relay.isEnded) {
    const message = await relay.next(Math.min(500, until - Date.now()));
    if (message?.t === 'done') return message;
    if (message) continue;
    const kept = await svc.relay.keptFinal(requestId).catch(() => undefined);
    if (kept?.t === 'done') return kept;
  }
  return undefined;
}

/**
 * SPEC §2: a client that gets an error is never charged. Before an error this process decided on itself (or
 * one that follows output it missed) goes to a client that has seen nothing of the answer, the request is
 * made unbillable: an open hold is released (a settlement after that charges nothing). A request found
 * already charged has an answer: `answer` may wait for it (non-stream), and only if none comes is the charge
 * taken back. With MariaDB unreachable the request is noted in Redis and a worker's sweeper makes it
 * unbillable once MariaDB is back. Returns the error, or the answer.
 */
async function unbilledOr(
  ctx: Context,
  svc: WebServices,
  error: ApiError,
  answer?: () => Promise<DoneMessage | undefined>,
): Promise<ApiError | DoneMessage> {
  const requestId: string = ctx.state.requestId;
  try {
    let state = await billingState(svc.db, requestId);
    if (state.held) {
      if (await releaseHold(svc.db, requestId)) return error;
      state = await billingState(svc.db, requestId); // settled meanwhile
    }
    if (state.chargedNano === null) return error;
    const done = await answer?.();
    if (done) return done;
    await reverseCharge(svc.db, requestId);
    log.warn({ requestId }, 'took back the charge of a request whose answer could not be delivered');
    return error;
  } catch {
    await deferVoid(svc.redis, svc.keys, requestId).catch(() =>
      log.error({ requestId }, 'neither MariaDB nor Redis answers: an errored request may stay billable'),
    );
    return error;
  }
}

/** Non-stream: await the job's single `done` (or `error`) message and answer it as JSON. */
export async function respondWithResult(ctx: Context, svc: WebServices, relay: RelayStream, deadlineAt: number): Promise<void> {
  const stopWatching = cancelOnDisconnect(ctx, svc, relay);
  const requestId: string = ctx.state.requestId;
  const deliver = (done: DoneMessage) => {
    ctx.set('x-eastx-cost-usd', formatUsd(BigInt(done.costNano)));
    ctx.body = done.result;
  };
  try {
    for (;;) {
      const message = await nextMessage(svc, relay, requestId, Math.max(0, deadlineAt + WORKER_GRACE_MS - Date.now()));
      if (relay.isEnded) return; // the client is gone; nobody reads an answer
      if (typeof message === 'object') {
        if (message.t === 'chunk') continue;
        if (message.t === 'done') return deliver(message);
        throw ApiError.fromWire(message.error); // a worker relays an error only for a request it left unbillable
      }
      const outcome = await unbilledOr(ctx, svc, errorOf(ctx, svc, message), () => awaitAnswer(svc, relay, requestId));
      if (outcome instanceof ApiError) throw outcome;
      return deliver(outcome);
    }
  } finally {
    stopWatching();
    svc.relay.close(requestId);
  }
}

/**
 * Stream: relay chunks as SSE (SPEC §1). The 200 goes out with the first chunk or after 10 s of waiting;
 * before that every failure is an ordinary HTTP error, after it an SSE error event. A failure before any
 * chunk reached the client leaves it uncharged; one after bills what was produced (SPEC §3).
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
  const fail = async (error: ApiError) => {
    if (chunksSent === 0) await unbilledOr(ctx, svc, error); // with no answer to wait for, it ends in `error`
    sse.fail(error);
  };
  try {
    for (;;) {
      const wait = Math.min(sse.started ? KEEPALIVE_MS : FIRST_BYTE_MS, Math.max(0, giveUpAt - Date.now()));
      const message = await nextMessage(svc, relay, ctx.state.requestId, wait);
      if (relay.isEnded || !ctx.res.writable) return;
      if (message === 'silent' && Date.now() < giveUpAt) {
        sse.comment('keep-alive');
        continue;
      }
      if (typeof message !== 'object') return await fail(errorOf(ctx, svc, message));
      // an error ends the stream whatever came before it (e.g. a re-run job refusing to start over); the worker
      // left the request unbillable, or billed what it streamed: output this process missed needs a look
      if (message.t === 'error') {
        const error = ApiError.fromWire(message.error);
        return message.seq === expectedSeq || message.seq === 0 ? sse.fail(error) : await fail(error);
      }
      if (message.seq !== expectedSeq) {
        // seq 0 again means BullMQ re-ran a stalled job; fine only if the client has seen nothing of the first run
        if (message.seq !== 0 || chunksSent > 0) {
          void svc.relay.cancel(ctx.state.requestId).catch(() => undefined);
          return await fail(interruptedError());
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
