import { Catalog, type UpstreamToken } from '../src/catalog/catalog.js';
import { ApiError } from '../src/http/errors.js';
import { log } from '../src/log.js';
import { abortJob } from '../src/queue/abort.js';
import { type JobBase, msUntilDeadline } from '../src/queue/jobs.js';
import { contextFrom, startStage } from '../src/telemetry.js';
import { shownFailure, UpstreamError } from '../src/upstream/errors.js';
import type { CallOutcome, Lease } from '../src/upstream/pool.js';
import { providerFor } from '../src/upstream/providers/registry.js';
import type { Provider, ProviderAdapter, UpstreamCall } from '../src/upstream/providers/types.js';
import { candidatesFor } from '../src/upstream/routing.js';
import { tokenSecret, type WorkerContext } from './context.js';

/** What a failed call says about its token (SPEC §4): 429/529 cool it at once, 5xx/connect/no first byte count toward it. */
export function outcomeOf(err: UpstreamError): CallOutcome {
  if (err.rateLimited) return 'ratelimited';
  if (err.failure === 'connect' || err.failure === 'first_byte_timeout' || (err.failure === 'http' && (err.status ?? 0) >= 500))
    return 'fail';
  if (err.failure === 'http' || err.failure === 'task_failed') return 'ok';
  return 'neutral';
}

/** A failure as operators see it on the channel (`last_error`): what happened, never a credential. */
export function describeFailure(err: UpstreamError): string {
  if (err.failure === 'http') return `HTTP ${err.status}: ${err.message}`;
  return `${err.failure.replace(/_/g, ' ')}: ${err.message}`;
}

async function disableToken(ctx: WorkerContext, token: UpstreamToken, err: UpstreamError): Promise<void> {
  await ctx.db
    .updateTable('upstream_tokens')
    .set({ status: 'disabled', disabled_reason: `upstream answered HTTP ${err.status} (credentials rejected)` })
    .where('id', '=', token.id)
    .execute();
  await Catalog.changed(ctx.redis, ctx.keys);
  log.warn(
    { tokenId: token.id, channelId: token.channelId, upstreamStatus: err.status },
    'upstream rejected the token credentials: token disabled; fix or replace it, then PATCH /admin/api/tokens/:id {"status":"active"}',
  );
}

/**
 * No token left to try on any route. A request that saw the upstream fail (5xx, no connection, nothing
 * before the first byte) answers that error, even when its own failure just cooled the last token (SPEC
 * §4). Otherwise 503 when every route's tokens are cooling or disabled (Retry-After = until the first
 * cooling one is back), else the last upstream error. `coolingHintMs` is what the lease script saw.
 */
async function exhausted(
  ctx: WorkerContext,
  job: JobBase,
  lastError: UpstreamError | undefined,
  coolingHintMs?: number,
): Promise<ApiError> {
  if (lastError && outcomeOf(lastError) === 'fail') return lastError.toApiError();
  const catalog = await ctx.catalog.latest();
  const tokens = [...new Set(job.routes.map((r) => r.channelId))].flatMap((id) => catalog.tokensByChannel.get(id) ?? []);
  const { usable, retryAfterMs } = await ctx.pool.availability(tokens);
  if (usable && lastError) return lastError.toApiError();
  const retryMs = retryAfterMs ?? coolingHintMs;
  if (retryMs === undefined) return new ApiError('upstream_unavailable', 'every upstream token of this model is disabled');
  return new ApiError('upstream_unavailable', 'every upstream token of this model is cooling down', {
    retryAfter: Math.max(1, Math.ceil(retryMs / 1000)),
  });
}

/** A call stopped with output already sent: its lease was lost while its worker stalled (Lease.lost). */
const leaseLostError = () =>
  new ApiError('upstream_error', 'the request was interrupted by a stalled gateway worker; please retry', {
    fields: { upstream_status: 0 },
  });

/**
 * The upstream call of one attempt: the job's signal, plus UPSTREAM_FIRST_BYTE_MS for the attempt to
 * produce something (a stream chunk out to the client, an answer, a submitted task: `mayRetry()` turns
 * false). An attempt past it is aborted and the job moves on; one that produced is left to the deadline.
 * An attempt whose lease was lost while the token filled up (Lease.lost) is aborted too.
 */
function attemptSignal(ctx: WorkerContext, job: JobBase, signal: AbortSignal, lease: Lease, mayRetry: () => boolean) {
  const controller = new AbortController();
  const forward = () => controller.abort(signal.reason);
  if (signal.aborted) forward();
  else signal.addEventListener('abort', forward, { once: true });
  let leaseLost = false;
  const stopForLostLease = () => {
    leaseLost = true;
    abortJob(controller, 'shutdown');
  };
  if (lease.lost.aborted) stopForLostLease();
  else lease.lost.addEventListener('abort', stopForLostLease, { once: true });
  let timedOut = false;
  const limitMs = ctx.config.upstreamFirstByteMs;
  const timer =
    limitMs < msUntilDeadline(job)
      ? setTimeout(() => {
          if (!mayRetry() || signal.aborted) return;
          timedOut = true;
          abortJob(controller, 'timeout');
        }, limitMs)
      : undefined;
  return {
    signal: controller.signal,
    /** the attempt, not the job, ran out of time */
    timedOut: () => timedOut && !signal.aborted,
    /** the attempt was stopped because its lease was lost and the token is full (Lease.lost) */
    leaseLost: () => leaseLost && !signal.aborted,
    done: () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', forward);
      lease.lost.removeEventListener('abort', stopForLostLease);
    },
  };
}

/**
 * Runs `attempt` on a leased token of one of the job's routes (highest priority first, by weight, the home
 * route preferred: src/upstream/routing.ts), moving to another token or route after a 429, 5xx, connect
 * failure, no first byte in time or rejected credentials, as long as `mayRetry()` (nothing reached the
 * client yet). A call stopped because its lease was lost (its worker stalled while others filled the token)
 * waits for a token again while nothing reached the client, and ends 502 otherwise. Every failure leaves as an
 * ApiError with the SPEC §2 code. `attempt` also gets the route's
 * provider (its capabilities), for jobs whose request is translated per channel type (Messages, Responses).
 */
export async function withUpstream<T>(
  ctx: WorkerContext,
  job: JobBase,
  signal: AbortSignal,
  attempt: (adapter: ProviderAdapter, call: UpstreamCall, provider: Provider) => Promise<T>,
  mayRetry: () => boolean = () => true,
): Promise<T> {
  const trace = contextFrom(job.trace);
  const tried = new Set<number>();
  const failed = new Set<number>();
  let lastError: UpstreamError | undefined;
  // asked again before every attempt to lease: a job waiting for a token follows the catalog as it changes (SPEC §4)
  const candidatesNow = async () => candidatesFor(job.routes, await ctx.catalog.latest(), { home: job.homeRoute, failed, tried });
  for (;;) {
    if ((await candidatesNow()).length === 0) throw new ApiError('upstream_unavailable', 'this model has no usable upstream channel');
    const leasing = startStage('lease', trace);
    const acquired = await ctx.pool.acquireRoute(candidatesNow, job.requestId, signal).finally(() => leasing.end());
    if (acquired.kind !== 'leased')
      throw await exhausted(ctx, job, lastError, acquired.kind === 'cooling' ? acquired.retryAfterMs : undefined);

    const { lease, candidate } = acquired;
    const { index: routeIndex, channel } = candidate;
    const route = job.routes[routeIndex];
    const secret = tokenSecret(ctx, lease.token);
    const limit = attemptSignal(ctx, job, signal, lease, mayRetry);
    try {
      const call = { baseUrl: channel.baseUrl, secret, upstreamModel: route.upstreamModel, signal: limit.signal };
      const calling = startStage('upstream', trace);
      const provider = providerFor(channel.type);
      const result = await attempt(provider.adapter, call, provider).finally(() => calling.end());
      // off the answer's path: the settlement and the final frame need not wait for the lease's release
      void lease
        .release('ok')
        .catch((e: unknown) => log.warn({ requestId: job.requestId, err: { message: (e as Error).message } }, 'lease release failed'));
      return result;
    } catch (err) {
      if (limit.leaseLost()) {
        await lease.release('neutral');
        if (!mayRetry()) throw leaseLostError();
        // the token was fine, only full: wait for a free one again, this one included
        continue;
      }
      if (!(err instanceof UpstreamError) && !limit.timedOut()) {
        await lease.release('neutral');
        throw err;
      }
      const safe = limit.timedOut()
        ? new UpstreamError('first_byte_timeout', `the upstream sent nothing within ${ctx.config.upstreamFirstByteMs} ms`)
        : shownFailure(err as UpstreamError, secret);
      await lease.release(outcomeOf(safe), safe.details.retryAfterMs, describeFailure(safe));
      if (safe.credentialsRejected) await disableToken(ctx, lease.token, safe);
      log.info(
        { requestId: job.requestId, channelId: channel.id, tokenId: lease.token.id, failure: safe.failure, upstreamStatus: safe.status },
        'upstream call failed',
      );
      if (!safe.retryable || !mayRetry() || signal.aborted) throw safe.toApiError();
      // a rejected credential says nothing about the upstream itself: report another token's error if there is one
      if (!lastError || !safe.credentialsRejected) lastError = safe;
      if (!safe.credentialsRejected) failed.add(routeIndex);
      tried.add(lease.token.id);
    } finally {
      limit.done();
    }
  }
}
