import { randomUUID } from 'node:crypto';
import type { CatalogSnapshot, ModelRoute } from '../src/catalog/catalog.js';
import type { Modality } from '../src/db/schema.js';
import { log } from '../src/log.js';
import { abortJob } from '../src/queue/abort.js';
import { shownFailure, UpstreamError } from '../src/upstream/errors.js';
import { reopenChannel, unhealthyChannels } from '../src/upstream/health.js';
import { providerFor } from '../src/upstream/providers/registry.js';
import { tokenSecret, type WorkerContext } from './context.js';
import { describeFailure, outcomeOf } from './upstream-call.js';

/** A probe call that has not answered in this long failed. */
const PROBE_TIMEOUT_MS = 10_000;

export type ProbeOutcome = 'recovered' | 'still-failing' | 'skipped' | 'reopened';

/**
 * What to send an unhealthy channel: a route of an active model on it, chat first (a 1-token completion),
 * else embeddings (one word). A channel that serves only images (a task costs money) or no model at all
 * has nothing cheap to probe with: it is opened to traffic again instead, and real calls decide.
 */
function probeTarget(catalog: CatalogSnapshot, channelId: number): { route: ModelRoute; modality: Modality } | undefined {
  let embedding: { route: ModelRoute; modality: Modality } | undefined;
  for (const model of catalog.models.values()) {
    if (model.status !== 'active') continue;
    const route = model.routes.find((r) => r.channelId === channelId);
    if (!route) continue;
    if (model.modality === 'chat') return { route, modality: 'chat' };
    if (model.modality === 'embedding') embedding ??= { route, modality: 'embedding' };
  }
  return embedding;
}

/**
 * Sends one minimal request to an unhealthy channel on a leased token (the token's concurrency and
 * cooldowns hold for probes too; a channel whose tokens are all cooling or busy is skipped this round). Its
 * outcome goes through the same release script as every call: an answer (any HTTP answer but 429/5xx) marks
 * the channel healthy again.
 */
async function probeChannel(ctx: WorkerContext, catalog: CatalogSnapshot, channelId: number): Promise<ProbeOutcome> {
  const channel = catalog.channels.get(channelId);
  if (!channel) return 'skipped';
  const target = probeTarget(catalog, channelId);
  if (!target) {
    await reopenChannel(ctx.redis, ctx.keys, channelId);
    log.info({ channelId }, 'unhealthy channel opened to traffic again: it serves no model that can be probed cheaply');
    return 'reopened';
  }
  const controller = new AbortController();
  const timer = setTimeout(() => abortJob(controller, 'timeout'), PROBE_TIMEOUT_MS);
  try {
    const tokens = catalog.tokensByChannel.get(channelId) ?? [];
    const acquired = await ctx.pool.acquire(tokens, `probe-${channelId}-${randomUUID()}`, controller.signal).catch(() => undefined);
    if (acquired?.kind !== 'leased') return 'skipped';
    const { lease } = acquired;
    const secret = tokenSecret(ctx, lease.token);
    const call = { baseUrl: channel.baseUrl, secret, upstreamModel: target.route.upstreamModel, signal: controller.signal };
    const adapter = providerFor(channel.type).adapter;
    try {
      if (target.modality === 'chat') {
        await adapter.chat({ model: target.route.upstreamModel, messages: [{ role: 'user', content: 'ping' }], max_tokens: 1 }, call);
      } else {
        await adapter.embeddings?.({ model: target.route.upstreamModel, input: 'ping', encoding_format: 'float' }, call);
      }
      await lease.release('ok');
      return 'recovered';
    } catch (err) {
      if (controller.signal.aborted) {
        await lease.release('fail', 0, `probe: no answer within ${PROBE_TIMEOUT_MS} ms`);
        return 'still-failing';
      }
      if (!(err instanceof UpstreamError)) {
        await lease.release('neutral');
        throw err;
      }
      const safe = shownFailure(err, secret);
      const outcome = outcomeOf(safe);
      await lease.release(outcome, safe.details.retryAfterMs, `probe: ${describeFailure(safe)}`);
      return outcome === 'ok' ? 'recovered' : 'still-failing';
    }
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The probe job (a BullMQ repeatable job every CHANNEL_PROBE_MS on the `health-probe` queue, global
 * concurrency 1: one run at a time across every worker process): probes each unhealthy channel once.
 */
export async function probeUnhealthyChannels(ctx: WorkerContext): Promise<Record<string, ProbeOutcome>> {
  const catalog = await ctx.catalog.current();
  const unhealthy = await unhealthyChannels(ctx.redis, ctx.keys, [...catalog.channels.keys()]);
  const outcomes: Record<string, ProbeOutcome> = {};
  for (const channelId of unhealthy) {
    outcomes[channelId] = await probeChannel(ctx, catalog, channelId);
    log.info({ channelId, outcome: outcomes[channelId] }, 'probed an unhealthy channel');
  }
  return outcomes;
}
