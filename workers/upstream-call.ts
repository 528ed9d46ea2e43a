import { Catalog } from '../src/catalog/catalog.js';
import { ApiError } from '../src/http/errors.js';
import { log } from '../src/log.js';
import type { JobBase } from '../src/queue/jobs.js';
import { scrub, UpstreamError } from '../src/upstream/errors.js';
import type { CallOutcome } from '../src/upstream/pool.js';
import { adapterFor } from '../src/upstream/providers/index.js';
import type { ProviderAdapter, UpstreamCall } from '../src/upstream/providers/types.js';
import { tokenSecret, type WorkerContext } from './context.js';

function outcomeOf(err: UpstreamError): CallOutcome {
  if (err.rateLimited) return 'ratelimited';
  if (err.failure === 'connect' || (err.failure === 'http' && (err.status ?? 0) >= 500)) return 'fail';
  return 'ok';
}

async function disableToken(ctx: WorkerContext, tokenId: number, err: UpstreamError): Promise<void> {
  await ctx.db
    .updateTable('upstream_tokens')
    .set({ status: 'disabled', disabled_reason: `upstream answered ${err.status}` })
    .where('id', '=', tokenId)
    .execute();
  await Catalog.changed(ctx.redis, ctx.keys);
  log.warn({ tokenId, upstreamStatus: err.status }, 'upstream rejected the token credentials: token disabled');
}

const cooling = (retryAfterMs: number) =>
  new ApiError('upstream_unavailable', 'every upstream token of this model is cooling down', {
    retryAfter: Math.max(1, Math.ceil(retryAfterMs / 1000)),
  });

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
  const tried = new Set<number>();
  let lastError: UpstreamError | undefined;
  for (;;) {
    const catalog = await ctx.catalog.current();
    const channel = catalog.channels.get(job.channelId);
    const adapter = channel && adapterFor(channel.type);
    if (!channel || !adapter) throw new ApiError('upstream_unavailable', 'this model has no usable upstream channel');
    const tokens = catalog.tokensByChannel.get(channel.id) ?? [];

    const acquired = await ctx.pool.acquire(tokens, job.requestId, signal, tried);
    if (acquired.kind === 'cooling') throw cooling(acquired.retryAfterMs);
    if (acquired.kind === 'none') {
      if (lastError?.rateLimited) {
        const again = await ctx.pool.acquire(tokens, job.requestId, signal);
        if (again.kind === 'cooling') throw cooling(again.retryAfterMs);
        if (again.kind === 'leased') await again.lease.release('ok');
      }
      if (lastError) throw lastError.toApiError();
      throw new ApiError('upstream_unavailable', 'every upstream token of this model is disabled');
    }

    const { lease } = acquired;
    const secret = tokenSecret(ctx, lease.token);
    try {
      const result = await attempt(adapter, { baseUrl: channel.baseUrl, secret, upstreamModel: job.upstreamModel, signal });
      await lease.release('ok');
      return result;
    } catch (err) {
      if (!(err instanceof UpstreamError)) {
        await lease.release('ok');
        throw err;
      }
      const safe = new UpstreamError(err.failure, scrub(err.message, secret), err.details);
      await lease.release(outcomeOf(safe), safe.details.retryAfterMs);
      if (safe.credentialsRejected) await disableToken(ctx, lease.token.id, safe);
      log.info({ requestId: job.requestId, tokenId: lease.token.id, failure: safe.failure, upstreamStatus: safe.status }, 'upstream call failed');
      lastError = safe;
      tried.add(lease.token.id);
      if (!safe.retryable || !mayRetry() || signal.aborted) throw safe.toApiError();
    }
  }
}
