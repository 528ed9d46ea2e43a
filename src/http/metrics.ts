import type { Context } from 'koa';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { WebServices } from '../services.js';
import { ROUTE_STATES, readChannelHealth } from '../upstream/health.js';
import { type AppContext, principal } from './state.js';
import type { ResponseObserver } from './track-request.js';

/**
 * Prometheus metrics of a web process (SPEC §5): HTTP traffic, plus queue depths and upstream token
 * leases/cooldowns read from Redis at scrape time (so any web process reports the whole fleet's state).
 */
export function createMetrics(svc: WebServices): { record: ResponseObserver; registry: Registry } {
  const registry = new Registry();
  const allTokens = async () => [...(await svc.catalog.current()).tokensByChannel.values()].flat();
  collectDefaultMetrics({ register: registry, prefix: 'eastx_' });
  const scrapeErrors = new Counter({
    name: 'eastx_metrics_scrape_errors_total',
    help: 'Scrapes that left a metric empty because its source (MySQL, Redis) did not answer (shown from the next scrape)',
    labelNames: ['metric'],
    registers: [registry],
  });
  /**
   * A gauge read at scrape time. When its source fails (MySQL down while the catalog must be reloaded, Redis
   * down) it is left empty in this scrape and counted, instead of failing the whole scrape with a 500: an
   * outage is when operators need the rest.
   */
  const readAtScrape = (name: string, read: (gauge: Gauge) => Promise<void>) =>
    async function collect(this: Gauge) {
      try {
        await read(this);
      } catch {
        this.reset();
        scrapeErrors.inc({ metric: name });
      }
    };

  const requests = new Counter({
    name: 'eastx_http_requests_total',
    help: 'HTTP requests by route and status',
    labelNames: ['route', 'status'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'eastx_http_request_duration_seconds',
    help: 'HTTP request duration until the response ended',
    labelNames: ['route'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
  new Gauge({
    name: 'eastx_queue_jobs',
    help: 'BullMQ jobs per channel queue and state',
    labelNames: ['queue', 'state'],
    registers: [registry],
    collect: readAtScrape('eastx_queue_jobs', async (gauge) => {
      const catalog = await svc.catalog.current();
      for (const channelId of catalog.channels.keys()) {
        const queue = svc.jobs.queue(channelId);
        const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed');
        for (const [state, count] of Object.entries(counts)) gauge.set({ queue: queue.name, state }, count);
      }
    }),
  });
  new Gauge({
    name: 'eastx_upstream_token_in_flight',
    help: 'Leased (in-flight) upstream calls per token',
    labelNames: ['channel', 'token'],
    registers: [registry],
    collect: readAtScrape('eastx_upstream_token_in_flight', async (gauge) => {
      for (const token of await allTokens()) {
        const leases = await svc.redis.zcount(svc.keys.leases(token.id), Date.now(), '+inf');
        gauge.set({ channel: String(token.channelId), token: String(token.id) }, leases);
      }
    }),
  });
  new Gauge({
    name: 'eastx_upstream_token_cooling_seconds',
    help: 'Seconds until an upstream token leaves its cooldown (0 = not cooling)',
    labelNames: ['channel', 'token'],
    registers: [registry],
    collect: readAtScrape('eastx_upstream_token_cooling_seconds', async (gauge) => {
      for (const token of await allTokens()) {
        const ms = await svc.redis.pttl(svc.keys.cooldown(token.id));
        gauge.set({ channel: String(token.channelId), token: String(token.id) }, Math.max(0, ms) / 1000);
      }
    }),
  });
  const channelHealth = async () => {
    const catalog = await svc.catalog.current();
    const channels = [...catalog.channels.keys()].map((id) => ({ id, tokens: catalog.tokensByChannel.get(id) ?? [] }));
    return { catalog, health: await readChannelHealth(svc.redis, svc.keys, channels) };
  };
  new Gauge({
    name: 'eastx_channel_state',
    help: 'Channel state (1 for the current one): healthy, cooling (every token cooling), unhealthy (failing; probed), disabled (no active token)',
    labelNames: ['channel', 'state'],
    registers: [registry],
    collect: readAtScrape('eastx_channel_state', async (gauge) => {
      gauge.reset();
      for (const [id, h] of (await channelHealth()).health)
        for (const state of ROUTE_STATES) gauge.set({ channel: String(id), state }, h.state === state ? 1 : 0);
    }),
  });
  new Gauge({
    name: 'eastx_channel_failures_in_row',
    help: 'Failed upstream calls in a row per channel, across its tokens (CHANNEL_UNHEALTHY_AFTER marks it unhealthy)',
    labelNames: ['channel'],
    registers: [registry],
    collect: readAtScrape('eastx_channel_failures_in_row', async (gauge) => {
      gauge.reset();
      for (const [id, h] of (await channelHealth()).health) gauge.set({ channel: String(id) }, h.failuresInRow);
    }),
  });
  new Gauge({
    name: 'eastx_route_state',
    help: "A model route's state (1 for the current one): its channel's",
    labelNames: ['model', 'channel', 'upstream_model', 'state'],
    registers: [registry],
    collect: readAtScrape('eastx_route_state', async (gauge) => {
      gauge.reset();
      const { catalog, health } = await channelHealth();
      for (const model of catalog.models.values()) {
        for (const route of model.routes) {
          const current = health.get(route.channelId)?.state;
          for (const state of ROUTE_STATES)
            gauge.set(
              { model: model.id, channel: String(route.channelId), upstream_model: route.upstreamModel, state },
              current === state ? 1 : 0,
            );
        }
      }
    }),
  });
  new Gauge({
    name: 'eastx_relay_open_requests',
    help: 'Requests of this web process waiting on their job',
    registers: [registry],
    collect() {
      this.set(svc.relay.openCount);
    },
  });

  const record: ResponseObserver = (ctx, elapsedMs) => {
    const route = String((ctx as Context & { _matchedRoute?: string })._matchedRoute ?? 'unmatched');
    requests.inc({ route, status: String(ctx.status) });
    duration.observe({ route }, elapsedMs / 1000);
  };

  return { record, registry };
}

/** GET /metrics (route guard: `metrics`). */
export async function serveMetrics(ctx: AppContext): Promise<void> {
  principal(ctx, 'metrics');
  ctx.type = ctx.metrics.contentType;
  ctx.body = await ctx.metrics.metrics();
}
