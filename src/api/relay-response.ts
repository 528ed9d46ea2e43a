import { formatUsd } from '../billing/money.js';
import { unbillableUnlessAnswered } from '../billing/unbillable.js';
import { ApiError } from '../http/errors.js';
import { type SseEvent, SseWriter } from '../http/sse.js';
import { type AppContext, detach } from '../http/state.js';
import { log } from '../log.js';
import { PeriodicSet } from '../periodic-set.js';
import { abortError } from '../queue/abort.js';
import { type DoneFrame, FrameSequence, type SequencedFrame } from '../queue/frames.js';
import { ANSWER_GRACE_MS, type JobBase } from '../queue/jobs.js';
import type { RelayStream } from '../queue/web-relay.js';
import { contextWith, recordStage } from '../telemetry.js';

/** SPEC §1: a stream's 200 goes out with its first chunk or after this long; then comments keep it alive. */
const FIRST_BYTE_MS = 10_000;
const KEEPALIVE_MS = 15_000;
/** How often the process's keep-alive timer looks for silent streams. */
const KEEPALIVE_CHECK_MS = 1_000;
/**
 * A job BullMQ no longer has as queued or running is lost once no heartbeat came for this long either: a
 * worker still running a job BullMQ lost track of (Redis restarted) sends one at least every ~3 s.
 */
const LOST_AFTER_MS = 5_000;
/** This process's relay subscription down this long: Redis is unreachable, in-flight requests answer 500. */
const REDIS_DOWN_MS = 2_000;
/** A request found charged when the web side was about to answer an error waits this long for its answer. */
const ANSWER_WAIT_MS = 3_000;

/**
 * How a stream is written in its client's wire format (the worker already put every event in it; the web
 * only relays): chat shows the usage chunk to clients that asked and ends with `data: [DONE]`; keep-alives
 * and the mid-stream error event differ per format.
 */
export interface StreamStyle {
  /** chat: write the done frame's `usageChunk` */
  includeUsage: boolean;
  /** chat: end with `data: [DONE]` (other formats end after their closing events) */
  doneMarker: boolean;
  /** what is written while the upstream is silent (chat: an SSE comment) */
  keepAlive(sse: SseWriter): void;
  /** the one event a failure after the 200 is written as (`eventsWritten`: how many events came before it) */
  errorEvent(error: ApiError, eventsWritten: number): SseEvent;
}

const chatStyle = (includeUsage: boolean): StreamStyle => ({
  includeUsage,
  doneMarker: true,
  keepAlive: (sse) => sse.comment('keep-alive'),
  errorEvent: (error) => ({ data: error.toJSON() }),
});
const CHAT_STYLES = { withUsage: chatStyle(true), withoutUsage: chatStyle(false) };

/**
 * Chat completions (SPEC §1): comments as keep-alives, `data: {"error":{…}}`, `data: [DONE]`. Two shared
 * styles, so that a held stream keeps no style object and closures of its own.
 */
export const chatStreamStyle = (includeUsage: boolean): StreamStyle => (includeUsage ? CHAT_STYLES.withUsage : CHAT_STYLES.withoutUsage);

/**
 * The keep-alives of every started stream of this process, written by one timer: a stream silent for
 * KEEPALIVE_MS gets its format's keep-alive. A held stream then waits for its next frame with no timer and
 * promise of its own per keep-alive (those lived 15 s, long enough to be promoted, and grew the old
 * generation by 1–2 MB/s with 10,000 streams held: BENCHMARKS.md, fourth round).
 */
const keepAlives = new PeriodicSet<SseWriter, StreamStyle>(KEEPALIVE_CHECK_MS, (streams) => {
  const silentSince = Date.now() - KEEPALIVE_MS;
  for (const [sse, style] of streams) if (sse.lastWriteAt <= silentSince && sse.writable) style.keepAlive(sse);
});

type Wait = SequencedFrame | 'silent' | 'lost' | 'unreachable' | 'interrupted';

/**
 * A client that goes away cancels the job (the worker aborts its upstream call and settles for what was
 * produced) and stops this request's wait at once. Returns the listener, for the caller to remove (a
 * response closes once: `on` spares a held stream the once-wrapper).
 */
function cancelOnDisconnect(ctx: AppContext, relay: RelayStream): () => void {
  const onClose = () => {
    if (ctx.res.writableFinished) return;
    relay.end();
    void ctx.services.relay.cancel(ctx.state.requestId).catch(() => undefined);
  };
  ctx.res.on('close', onClose);
  return onClose;
}

/** Relay frames went missing (Redis trouble): eastx's own failure, not the upstream's. */
const interruptedError = () => new ApiError('internal_error', 'the stream was interrupted inside eastx; please retry');

/** The error a wait ended with, decided by this process; a timeout or this process stopping also cancels the job. */
function errorOf(ctx: AppContext, wait: Exclude<Wait, SequencedFrame>): ApiError {
  if (wait === 'lost') return new ApiError('internal_error', 'eastx lost track of this request (its queue was reset); please retry');
  if (wait === 'unreachable') return new ApiError('internal_error', 'eastx cannot reach its Redis; please retry');
  void ctx.services.relay.cancel(ctx.state.requestId).catch(() => undefined);
  if (wait === 'interrupted') return abortError('shutdown');
  return new ApiError('upstream_timeout', 'the upstream did not answer before the deadline');
}

/**
 * The job's next frame within `waitMs`: `silent` when none came (or the client left); `lost` when BullMQ no
 * longer has the job, no heartbeat says a worker still runs it, and no final frame was kept for it;
 * `unreachable` when Redis is; `interrupted` when this process is stopping. Whenever the hub pokes the
 * request (its job silent for SILENCE_CHECK_MS, or the relay subscription back), it looks for the job's kept
 * final frame and asks BullMQ about the job.
 */
async function nextFrame(ctx: AppContext, relay: RelayStream, job: RelayTicket, waitMs: number): Promise<Wait> {
  const svc = ctx.services;
  const until = Date.now() + waitMs;
  let overSince: number | undefined;
  for (;;) {
    const downMs = svc.relay.downForMs();
    const pause = downMs !== undefined ? REDIS_DOWN_MS - downMs : overSince !== undefined ? 1_000 : waitMs;
    const frame = await relay.next(Math.max(0, Math.min(pause, until - Date.now())));
    if (frame) return frame;
    if (relay.isEnded) return 'silent';
    if (relay.isInterrupted) return 'interrupted';
    if (Date.now() >= until) return 'silent';
    const down = svc.relay.downForMs();
    if (down !== undefined) {
      if (down >= REDIS_DOWN_MS) return 'unreachable';
      continue;
    }
    try {
      const kept = await svc.relay.keptFinal(job.requestId);
      if (kept) return kept;
      if (await svc.jobs.isLive(job.channelId, job.requestId)) {
        overSince = undefined;
        continue;
      }
    } catch {
      return 'unreachable';
    }
    overSince ??= Date.now();
    if (Date.now() - Math.max(overSince, relay.heardAt) >= LOST_AFTER_MS) return 'lost';
  }
}

/** The job's `done` frame if it comes (live or kept) within ANSWER_WAIT_MS. */
async function awaitAnswer(ctx: AppContext, relay: RelayStream): Promise<DoneFrame | undefined> {
  const until = Date.now() + ANSWER_WAIT_MS;
  while (Date.now() < until && !relay.isEnded) {
    const frame = await relay.next(Math.min(500, until - Date.now()));
    if (frame?.t === 'done') return frame;
    if (frame) continue;
    const kept = await ctx.services.relay.keptFinal(ctx.state.requestId).catch(() => undefined);
    if (kept?.t === 'done') return kept;
  }
  return undefined;
}

/** Non-stream: await the job's single `done` (or `error`) frame and answer it as JSON. */
export async function respondWithResult(ctx: AppContext, relay: RelayStream, job: JobBase): Promise<void> {
  const cancelOnClose = cancelOnDisconnect(ctx, relay);
  const deliver = (done: DoneFrame) => {
    if (done.sentAt) recordStage('relay.back', contextWith(ctx.state.span), done.sentAt);
    ctx.set('x-eastx-cost-usd', formatUsd(BigInt(done.costNano)));
    ctx.body = done.result;
  };
  try {
    for (;;) {
      const frame = await nextFrame(ctx, relay, job, Math.max(0, job.deadlineAt + ANSWER_GRACE_MS - Date.now()));
      if (relay.isEnded) return; // the client is gone; nobody reads an answer
      if (typeof frame === 'object') {
        if (frame.t === 'chunk') continue;
        if (frame.t === 'done') return deliver(frame);
        throw ApiError.fromWire(frame.error); // a worker relays an error only for a request it left unbillable
      }
      const error = errorOf(ctx, frame);
      const outcome = await unbillableUnlessAnswered(ctx.services, job.requestId, () => awaitAnswer(ctx, relay));
      if (outcome === 'unbillable') throw error;
      return deliver(outcome);
    }
  } finally {
    ctx.res.off('close', cancelOnClose);
    ctx.services.relay.close(job.requestId);
  }
}

/**
 * Stream: relay chunks as SSE (SPEC §1). The 200 goes out with the first chunk or after 10 s of waiting;
 * before that every failure is an ordinary HTTP error, after it an SSE error event. A failure before any
 * chunk reached the client leaves it uncharged; one after bills what was produced (SPEC §3). Chunks are
 * written as they come (with their event names); the done frame's closing events follow, then the style's end.
 *
 * Once the 200 is out, the rest of the stream is relayed detached from the middleware chain: the chain
 * returns, so a stream held open for minutes keeps only its response, relay and a ticket of its job, not every
 * middleware's suspended frame (the access log, metrics and the key's concurrency slot finish on the
 * response's `close`).
 */
export async function respondWithStream(ctx: AppContext, relay: RelayStream, job: JobBase, style: StreamStyle): Promise<void> {
  const ticket = ticketOf(job); // the detached part below keeps this, not the job and its body
  // which came first: the 200 (the rest is relayed detached) or the relay's end. No Promise.race: its
  // reactions would stay on the relay's promise for as long as a held stream lasts.
  const endedBeforeStart = await new Promise<boolean>((resolve, reject) => {
    const sse = new SseWriter(ctx, () => resolve(false));
    relayStream(ctx, relay, ticket, style, sse).then(
      () => resolve(true),
      (err: unknown) => (sse.started ? relayFailed(ctx, ticket, err) : reject(err)), // before the 200: the error boundary answers it
    );
  });
  if (!endedBeforeStart) detach(ctx);
}

/** A failure after the 200 with no error event written: logged, and the client sees the stream cut. */
function relayFailed(ctx: AppContext, ticket: RelayTicket, err: unknown): void {
  log.error({ err: { message: (err as Error).message, stack: (err as Error).stack }, requestId: ticket.requestId }, 'stream relay failed');
  ctx.res.destroy();
}

/** What relaying needs of a job (a held stream keeps this, not the job and its body). */
type RelayTicket = Pick<JobBase, 'requestId' | 'channelId' | 'deadlineAt'>;

const ticketOf = ({ requestId, channelId, deadlineAt }: JobBase): RelayTicket => ({ requestId, channelId, deadlineAt });

async function relayStream(ctx: AppContext, relay: RelayStream, job: RelayTicket, style: StreamStyle, sse: SseWriter): Promise<void> {
  const cancelOnClose = cancelOnDisconnect(ctx, relay);
  const sequence = new FrameSequence();
  const giveUpAt = job.deadlineAt + ANSWER_GRACE_MS;
  const fail = async (error: ApiError) => {
    if (!sequence.started) await unbillableUnlessAnswered(ctx.services, job.requestId); // no answer to wait for
    sse.fail(error, style.errorEvent(error, sse.events));
  };
  try {
    for (;;) {
      // once started, the stream waits up to its deadline: the keep-alive timer speaks while it is silent
      if (sse.started) keepAlives.add(sse, style);
      const untilDeadline = Math.max(0, giveUpAt - Date.now());
      const wait = sse.started ? untilDeadline : Math.min(FIRST_BYTE_MS, untilDeadline);
      const frame = await nextFrame(ctx, relay, job, wait);
      if (relay.isEnded || !ctx.res.writable) return;
      // silent before the start (the 200 goes out now with a keep-alive), or, once started, until the deadline
      if (frame === 'silent' && Date.now() < giveUpAt) {
        style.keepAlive(sse);
        continue;
      }
      if (typeof frame !== 'object') return await fail(errorOf(ctx, frame));
      // an error ends the stream whatever came before it (e.g. a re-run job refusing to start over); the worker
      // left the request unbillable, or billed what it streamed: output this process missed needs a look
      if (frame.t === 'error') {
        const error = ApiError.fromWire(frame.error);
        return sequence.accept(frame) === 'ok' ? sse.fail(error, style.errorEvent(error, sse.events)) : await fail(error);
      }
      if (sequence.accept(frame) === 'gap') {
        void ctx.services.relay.cancel(job.requestId).catch(() => undefined);
        return await fail(interruptedError());
      }
      if (frame.t === 'chunk') {
        sse.event(frame.event, frame.chunk);
        continue;
      }
      if (style.includeUsage && frame.usageChunk) sse.data(frame.usageChunk);
      for (const closing of frame.events ?? []) sse.event(closing.event, closing.data);
      return style.doneMarker ? sse.done() : sse.end();
    }
  } finally {
    keepAlives.delete(sse);
    ctx.res.off('close', cancelOnClose);
    ctx.services.relay.close(job.requestId);
  }
}
