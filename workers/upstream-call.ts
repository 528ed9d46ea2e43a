import { Catalog, type UpstreamToken } from '../src/catalog/catalog.js';
import { ApiError } from '../src/http/errors.js';
import { log } from '../src/log.js';
import type { JobBase } from '../src/queue/jobs.js';
import { contextFrom, startStage } from '../src/telemetry.js';
import { scrub, UpstreamError } from '../src/upstream/errors.js';
import type { CallOutcome } from '../src/upstream/pool.js';
import { providerFor } from '../src/upstream/providers/registry.js';
import type { ProviderAdapter, UpstreamCall } from '../src/upstream/providers/types.js';
import { tokenSecret, type WorkerContext } from './context.js';

/** What a failed call says about its token (SPEC §4): 429/529 cool it at once, 5xx/connect count toward it. */
function outcomeOf(err: UpstreamError): CallOutcome {
  if (err.rateLimited) return 'ratelimited';
  if (err.failure === 'connect' || (err.failure === 'http' && (err.status ?? 0) >= 500)) return 'fail';
  if (err.failure === 'http' || err.failure === 'task_failed') return 'ok';
  return 'neutral';
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
 * No token left to try. A request that saw the upstream fail (5xx, no connection) answers that error, even
 * when its own failure just cooled the last token (SPEC §4). Otherwise 503 when the whole channel is cooling
 * or disabled (Retry-After = until the first cooling one is back), else the last upstream error.
 * `coolingHintMs` is what the lease script saw.
 */
async function exhausted(
  ctx: WorkerContext,
  channelId: number,
  lastError: UpstreamError | undefined,
  coolingHintMs?: number,
): Promise<ApiError> {
  if (lastError && outcomeOf(lastError) === 'fail') return lastError.toApiError();
  const tokens = (await ctx.catalog.latest()).tokensByChannel.get(channelId) ?? [];
  const { usable, retryAfterMs } = await ctx.pool.availability(tokens);
  if (usable && lastError) return lastError.toApiError();
  const retryMs = retryAfterMs ?? coolingHintMs;
  if (retryMs === undefined) return new ApiError('upstream_unavailable', 'every upstream token of this model is disabled');
  return new ApiError('upstream_unavailable', 'every upstream token of this model is cooling down', {
    retryAfter: Math.max(1, Math.ceil(retryMs / 1000)),
  });
}

/**
 * Runs `attempt` on a leased token of the job's channel, moving to another token after a 429, 5xx,
 * connect failure or rejected credentials, as long as `mayRetry()` (nothing reached the client yet).
 * Every failure leaves as an ApiError with the SPEC §2 code.
 */
export async function withUpstream<T>(
  ctx: WorkerContext,
  job: JobBase,
  signal: AbortSignal,
  attempt: (adapter: ProviderAdapter, call: UpstreamCall) => Promise<T>,
  mayRetry: () => boolean = () => true,
): Promise<T> {
  const trace = contextFrom(job.trace);
  const tried = new Set<number>();
  let lastError: UpstreamError | undefined;
  for (;;) {
    const catalog = await ctx.catalog.latest();
    const channel = catalog.channels.get(job.channelId);
    const adapter = channel && providerFor(channel.type).adapter;
    if (!channel || !adapter) throw new ApiError('upstream_unavailable', 'this model has no usable upstream channel');
    const tokens = catalog.tokensByChannel.get(channel.id) ?? [];

    const leasing = startStage('lease', trace);
    const acquired = await ctx.pool.acquire(tokens, job.requestId, signal, tried).finally(() => leasing.end());
    if (acquired.kind !== 'leased') {
      throw await exhausted(ctx, channel.id, lastError, acquired.kind === 'cooling' ? acquired.retryAfterMs : undefined);
    }

    const { lease } = acquired;
    const secret = tokenSecret(ctx, lease.token);
    try {
      const calling = startStage('upstream', trace);
      const result = await attempt(adapter, { baseUrl: channel.baseUrl, secret, upstreamModel: job.upstreamModel, signal }).finally(() =>
        calling.end(),
      );
      await lease.release('ok');
      return result;
    } catch (err) {
      if (!(err instanceof UpstreamError)) {
        await lease.release('neutral');
        throw err;
      }
      const safe = new UpstreamError(err.failure, scrub(err.message, secret), err.details);
      await lease.release(outcomeOf(safe), safe.details.retryAfterMs);
      if (safe.credentialsRejected) await disableToken(ctx, lease.token, safe);
      log.info(
        { requestId: job.requestId, tokenId: lease.token.id, failure: safe.failure, upstreamStatus: safe.status },
        'upstream call failed',
      );
      if (!safe.retryable || !mayRetry() || signal.aborted) throw safe.toApiError();
      // a rejected credential says nothing about the upstream itself: report another token's error if there is one
      if (!lastError || !safe.credentialsRejected) lastError = safe;
      tried.add(lease.token.id);
    }
  }
}
