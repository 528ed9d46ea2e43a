import type { CatalogSnapshot, Channel, ModelRoute } from '../catalog/catalog.js';
import type { RouteCandidate } from './pool.js';

/**
 * Routes (SPEC §4): how a job's model maps onto channels. The web picks the job's home route (its queue);
 * the worker asks the pool for a token among all of the job's routes, tier by tier (see acquire.lua).
 *
 * Jobs, queues and routes: a job waits in ONE queue, its home channel's, and whichever worker takes it may
 * lease a token of any of its routes' channels. The home is drawn by weight at the web among the
 * highest-priority routes whose channel has an active token, and the worker prefers it while it has a free
 * token, so each channel's queue carries about its own share of the traffic; a route that is cooling,
 * unhealthy or failing only sends its jobs elsewhere (they leave its queue at once), and a job never waits
 * in a queue for a channel it will not use. Workers listen on every channel's queue, so no queue is left
 * unserved.
 */

const hasActiveToken = (catalog: CatalogSnapshot, channelId: number) =>
  (catalog.tokensByChannel.get(channelId) ?? []).some((t) => t.status === 'active');

/**
 * The job's home route (an index into `routes`, which are in trying order): drawn by weight among the
 * highest-priority routes whose channel has an active token (a route with weight 0 only when its tier has
 * no other); the first route when no channel has one (the job then answers 503 from the worker).
 */
export function chooseHome(routes: readonly ModelRoute[], catalog: CatalogSnapshot, random = Math.random()): number {
  const usable = routes.map((r, i) => ({ r, i })).filter(({ r }) => hasActiveToken(catalog, r.channelId));
  if (usable.length === 0) return 0;
  const top = usable.filter(({ r }) => r.priority === usable[0].r.priority);
  const total = top.reduce((sum, { r }) => sum + r.weight, 0);
  if (total <= 0) return top[0].i;
  let point = random * total;
  for (const { r, i } of top) {
    point -= r.weight;
    if (point < 0) return i;
  }
  return top[top.length - 1].i;
}

export interface RoutingState {
  /** index of the home route in the job's routes */
  home: number;
  /** routes (indexes) on which a call of this job failed */
  failed: ReadonlySet<number>;
  /** tokens this job already tried */
  tried: ReadonlySet<number>;
}

export type JobRouteCandidate = RouteCandidate & { index: number; channel: Channel };

/**
 * The job's routes as pool candidates: tiers by priority (routes come in trying order), ranks (home first
 * while nothing failed, routes not failed before failed ones) and each channel's active tokens not tried
 * yet. Routes whose channel left the catalog are dropped. `index` maps a candidate back to its route,
 * `channel` is the route's channel in `catalog` (its base URL and type).
 */
export function candidatesFor(routes: readonly ModelRoute[], catalog: CatalogSnapshot, state: RoutingState): JobRouteCandidate[] {
  const candidates: JobRouteCandidate[] = [];
  let tier = -1;
  let priority: number | undefined;
  routes.forEach((route, index) => {
    const channel = catalog.channels.get(route.channelId);
    if (!channel) return;
    if (route.priority !== priority) {
      tier++;
      priority = route.priority;
    }
    const rank = state.failed.has(index) ? 2 : index === state.home && state.failed.size === 0 ? 0 : 1;
    const tokens = (catalog.tokensByChannel.get(route.channelId) ?? []).filter((t) => t.status === 'active' && !state.tried.has(t.id));
    candidates.push({ index, channel, channelId: route.channelId, tier, rank, weight: route.weight, tokens });
  });
  return candidates;
}
