import { releaseHold } from '../src/billing/holds.js';
import type { Usage } from '../src/billing/money.js';
import { settle } from '../src/billing/settlement.js';
import { deferVoid } from '../src/billing/unbillable.js';
import { ApiError } from '../src/http/errors.js';
import { log } from '../src/log.js';
import { abortError, abortReasonOf } from '../src/queue/abort.js';
import { decodePrices, type JobBase } from '../src/queue/jobs.js';
import { RelayPublisher } from '../src/queue/worker-relay.js';
import { contextFrom, startStage } from '../src/telemetry.js';
import type { TokenUsage } from '../src/upstream/providers/types.js';
import { estimatedUsage, fromTokenUsage } from './chat-usage.js';
import type { WorkerContext } from './context.js';

/** The SPEC §2 error a failed job answers with. */
export function asApiError(err: unknown, signal: AbortSignal): ApiError {
  if (err instanceof ApiError) return err;
  const aborted = abortReasonOf(signal);
  return aborted ? abortError(aborted) : new ApiError('internal_error', 'the worker failed while processing the request');
}

export interface JobSummary {
  /** `left`: another worker process runs the job (workers/run-claim.ts); this delivery did nothing */
  status: 'ok' | 'failed' | 'left';
  promptTokens?: number;
  completionTokens?: number;
  costNano?: string;
  estimated?: boolean;
}

/** The summary of a chat-like job that was billed `cost` for `usage`. */
const billedSummary = (usage: { promptTokens: number; completionTokens: number }, cost: bigint, estimated: boolean): JobSummary => ({
  status: 'ok',
  promptTokens: usage.promptTokens,
  completionTokens: usage.completionTokens,
  costNano: cost.toString(),
  estimated,
});

/**
 * Bills a chat-like answer (every wire format): from the upstream's usage, or, when it reported none, from the
 * gateway's own count of `chatBody`'s prompt and of what was produced (counted only then; the row is marked
 * estimated). A stream that failed is billed by `chargeCutShort` instead.
 */
export async function chargeChat(
  ctx: WorkerContext,
  job: JobBase,
  chatBody: Record<string, unknown>,
  upstream: TokenUsage | undefined,
  produced: () => string,
): Promise<{ usage: Usage; cost: bigint; summary: JobSummary }> {
  const estimated = !upstream;
  const usage = upstream ? fromTokenUsage(upstream) : estimatedUsage(chatBody, produced());
  const cost = await charge(ctx, job, usage, estimated);
  return { usage, cost, summary: billedSummary(usage, cost, estimated) };
}

/** What a stream that failed leaves to bill. */
export interface CutShort {
  /** the prompt, as the chat request the gateway counts */
  chatBody: Record<string, unknown>;
  /** the output relayed: text, reasoning and tool-call fragments */
  produced: string;
  /** whether anything went out to the client (its 200 did) */
  started: boolean;
  /** the prompt's usage where the upstream reported it before the end (Anthropic's message_start) */
  reportedPrompt?: TokenUsage;
}

/**
 * A stream that failed after it started: billed for what it produced, counted by the gateway (SPEC §3; the row
 * is marked estimated). With no output yet (a role chunk, a message_start) it costs nothing when the upstream
 * or the gateway cut it, since its client gets an error (SPEC §2); a client that left after its 200 pays for
 * the prompt the upstream already read, as with any output. Returns what was billed, if anything.
 */
export async function chargeCutShort(
  ctx: WorkerContext,
  job: JobBase,
  signal: AbortSignal,
  cut: CutShort,
): Promise<{ usage: Usage; cost: bigint } | undefined> {
  const clientLeft = cut.started && abortReasonOf(signal) === 'cancelled';
  if (!cut.produced && !clientLeft) return undefined;
  const usage = estimatedUsage(cut.chatBody, cut.produced, cut.reportedPrompt);
  return { usage, cost: await charge(ctx, job, usage, true) };
}

/** A settlement that failed (MariaDB unreachable): it may or may not have committed. */
class SettlementFailed extends ApiError {
  constructor() {
    super('internal_error', 'eastx could not reach its database to bill this request; nothing was charged; please retry');
  }
}

/**
 * Settles the job's cost and returns the charged amount. Answers are sent only for requests charged here:
 * a request whose hold is already gone (the web side gave up on it, or a sweeper found its job gone) gets
 * an error instead.
 */
export async function charge(ctx: WorkerContext, job: JobBase, usage: Usage, estimated: boolean): Promise<bigint> {
  const span = startStage('settle', contextFrom(job.trace));
  const outcome = await settle(ctx.db, {
    requestId: job.requestId,
    userId: job.userId,
    keyId: job.keyId,
    model: job.model,
    prices: decodePrices(job.prices),
    usage,
    holdNano: BigInt(job.holdNano),
    estimated,
  })
    .catch((err: unknown) => {
      log.error({ requestId: job.requestId, err: { message: (err as Error).message } }, 'settlement failed');
      throw new SettlementFailed();
    })
    .finally(() => span.end());
  if (!outcome.applied)
    throw new ApiError('internal_error', 'this request was already ended by the gateway; nothing was charged; please retry');
  return outcome.costNano;
}

/**
 * A failed job ends uncharged (SPEC §2): its hold is released. A settlement of this run that failed (MariaDB
 * unreachable; it may even have committed) is handed to the sweepers, which release the hold or take the
 * charge back once MariaDB answers, so the client hears at once. A plain release that fails is left to the
 * sweepers too: they free the holds of failed jobs.
 */
async function endUncharged(ctx: WorkerContext, job: JobBase, err: unknown): Promise<void> {
  try {
    if (!(err instanceof SettlementFailed)) {
      await releaseHold(ctx.db, job.requestId);
      return;
    }
    await deferVoid(ctx.redis, ctx.keys, job.requestId);
    log.warn({ requestId: job.requestId }, 'settlement failed: the request is made unbillable once MariaDB answers');
  } catch (e) {
    log.error({ requestId: job.requestId, err: { message: (e as Error).message } }, 'could not release the hold of a failed job');
  }
}

/**
 * The frame of every job: `work` gets the job's relay (kept alive by heartbeats while the job is silent); if
 * it fails, the request is made unbillable (whatever was produced of a stream was already settled by
 * `work`), the SPEC §2 error is relayed to the web side, and the error is rethrown so BullMQ records the
 * job as failed.
 */
export async function runJob(
  ctx: WorkerContext,
  job: JobBase,
  signal: AbortSignal,
  work: (relay: RelayPublisher) => Promise<JobSummary>,
): Promise<JobSummary> {
  const relay = new RelayPublisher(ctx.redis, ctx.keys, job, ctx.workerId);
  const stopHeartbeat = relay.keepAlive();
  try {
    return await work(relay);
  } catch (err) {
    // aborted before its upstream call: the request, its hold and its answer are the other run's
    if (abortReasonOf(signal) === 'superseded') throw err;
    await endUncharged(ctx, job, err);
    const error = asApiError(err, signal);
    await relay.send({ t: 'error', error: error.toWire() });
    throw error;
  } finally {
    stopHeartbeat();
  }
}
