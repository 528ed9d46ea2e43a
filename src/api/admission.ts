import type { z } from 'zod';
import { allowsModel } from '../accounts/allowed-models.js';
import { type Reservation, reserve, type WorstCase } from '../billing/reserve.js';
import { voidNowOrLater } from '../billing/unbillable.js';
import type { CatalogSnapshot, Channel, Model, ModelRoute } from '../catalog/catalog.js';
import type { Modality } from '../db/schema.js';
import { parseBody, yieldIfLarge } from '../http/body.js';
import { ApiError, badRequest } from '../http/errors.js';
import { confirmCustomer } from '../http/guards.js';
import { type AppContext, type AppMiddleware, claimedCustomer, customerKey, principal } from '../http/state.js';
import { formatResetDuration } from '../limits/rpm.js';
import { log } from '../log.js';
import { deadlineFor, encodePrices, type JobBase, type JobData, type JobKind } from '../queue/jobs.js';
import type { RelayStream } from '../queue/web-relay.js';
import { carrierOf, contextWith, recordStage, startStage } from '../telemetry.js';
import { type Demand, unservable } from '../upstream/providers/registry.js';
import { chooseHome } from '../upstream/routing.js';

/**
 * Admission (SPEC §2 check order): auth (the route's guard) → body → model (and the key's model list) → RPM →
 * the key's concurrency (in one Lua call with RPM) → hold. Each step is a
 * small middleware writing typed ctx.state; a front door declares what its steps need, and
 * `admission(door)` composes them in that order, the one place the order is written.
 */

/** A `/v1` endpoint as admission sees it. */
export interface FrontDoor<B extends { model: string }> {
  endpoint: string;
  modality: Modality;
  schema: z.ZodType<B>;
  /** 400s about the body alone, beyond its schema. */
  checkBody?(body: B): void;
  /** What the body refers to that must be read before the model step (Responses: previous_response_id), and its 4xx. */
  load?(ctx: AppContext, body: B): Promise<void>;
  /** What the model's channels must be able to serve, and 400s about this body on this model. */
  demand(body: B, model: Model): Demand;
  worstCase(body: B, model: Model): WorstCase;
}

/** What admission found, for the handler: the body, the model, its home channel and the hold. */
export interface Admitted<B> {
  body: B;
  model: Model;
  channel: Channel;
  reservation: Reservation;
}

export function admitted<B>(ctx: AppContext): Admitted<B> {
  const found = admittedWithoutHold<B>(ctx);
  const { reservation } = ctx.state;
  if (!reservation) throw new Error('handler reached without admission');
  return { ...found, reservation };
}

/** What admission without a hold found (`admissionWithoutHold`), for the handler. */
export function admittedWithoutHold<B>(ctx: AppContext): Omit<Admitted<B>, 'reservation'> & { reservation?: undefined } {
  const { body, model, channel, routes } = ctx.state;
  principal(ctx, 'customer');
  if (body === undefined || !model || !channel || !routes) throw new Error('handler reached without admission');
  return { body: body as B, model, channel };
}

export function bodyStep<B>(
  schema: z.ZodType<B>,
  checkBody?: (body: B) => void,
  load?: (ctx: AppContext, body: B) => Promise<void>,
): AppMiddleware {
  return async (ctx, next) => {
    ctx.state.admissionStartedAt = Date.now();
    const body = await parseBody(ctx, schema, ctx.services.config.bodyLimitBytes);
    checkBody?.(body);
    await load?.(ctx, body);
    ctx.state.body = body;
    await next();
  };
}

/**
 * The catalog entry a /v1 request names (SPEC §2: unknown, coming-soon or disabled → 404), read once; a
 * model the key may not use is 403 `model_not_allowed` (`hidden`: 404, as if it did not exist, for
 * GET /v1/models/{id}).
 */
export async function findModel(ctx: AppContext, id: string, hidden = false): Promise<{ model: Model; catalog: CatalogSnapshot }> {
  const customer = claimedCustomer(ctx);
  const catalog = customer.catalog ?? (await ctx.services.catalog.at(customer.catalogVersion));
  const model = catalog.models.get(id);
  const notFound = () =>
    new ApiError('model_not_found', `model ${JSON.stringify(id)} does not exist or is not available`, { param: 'model' });
  if (model?.status !== 'active' || model.routes.length === 0) throw notFound();
  if (!allowsModel(customer.key.allowedModels, model.id)) {
    if (hidden) throw notFound();
    throw new ApiError('model_not_allowed', `this API key may not use model ${JSON.stringify(id)}`, { param: 'model' });
  }
  return { model, catalog };
}

/**
 * The model's routes that can serve this request (the provider registry asks each route's channel), in
 * trying order. None: 400 with what the first route's channel cannot do.
 */
function servableRoutes(catalog: CatalogSnapshot, model: Model, demand: Demand): ModelRoute[] {
  if (model.routes.length === 1) {
    const channel = catalog.channels.get(model.routes[0].channelId);
    const problem = channel ? unservable(channel, demand) : (['model', 'this model has no upstream channel'] as [string, string]);
    if (problem) throw badRequest(`${problem[0]}: ${problem[1]}`, problem[0]);
    return model.routes;
  }
  const byType = new Map<string, [string, string] | undefined>(); // one check per channel type
  let first: [string, string] | undefined;
  const routes = model.routes.filter((route) => {
    const channel = catalog.channels.get(route.channelId);
    if (channel && !byType.has(channel.type)) byType.set(channel.type, unservable(channel, demand));
    const problem = channel ? byType.get(channel.type) : (['model', 'this model has no upstream channel'] as [string, string]);
    first ??= problem;
    return !problem;
  });
  if (routes.length === 0 && first) throw badRequest(`${first[0]}: ${first[1]}`, first[0]);
  return routes;
}

/**
 * The model step, which is also the key step: the key's check and the RPM take (with the key's concurrency
 * slot, for a door that takes one) ride together (confirmCustomer).
 */
function modelStep<B extends { model: string }>(door: FrontDoor<B>, takesSlot: boolean): AppMiddleware {
  return async (ctx, next) => {
    await confirmCustomer(ctx, { check: () => chooseModel(ctx, door), countsRpm: true, takesSlot });
    await next();
  };
}

async function chooseModel<B extends { model: string }>(ctx: AppContext, door: FrontDoor<B>): Promise<void> {
  const body = ctx.state.body as B;
  const { model, catalog } = await findModel(ctx, body.model);
  if (model.modality !== door.modality) {
    throw new ApiError('wrong_endpoint', `model ${model.id} is a ${model.modality} model; ${door.endpoint} takes ${door.modality} models`, {
      param: 'model',
    });
  }
  const routes = servableRoutes(catalog, model, door.demand(body, model));
  const home = chooseHome(routes, catalog);
  ctx.state.model = model;
  ctx.state.routes = routes;
  ctx.state.homeRoute = home;
  ctx.state.channel = catalog.channels.get(routes[home].channelId);
}

/**
 * RPM step: counts the request (the take the key step sent with the key check, when it admitted the request),
 * sets the x-ratelimit headers, 429 past the key's limit. On a route without a model step it is the key step.
 * With `takesSlot` it is also the concurrency step (SPEC §4): a key with `max_concurrent_requests` holds a slot
 * while its request runs, taken in the same Lua call as the count; one more in flight is 429 with
 * Retry-After: 1 and, like an RPM refusal, never counted. The slot is freed when the request ends, fails or
 * its client disconnects.
 */
function rpmStep(takesSlot: boolean): AppMiddleware {
  return async (ctx, next) => {
    await confirmCustomer(ctx, { countsRpm: true, takesSlot });
    const key = customerKey(ctx);
    const { requestId } = ctx.state;
    const { rpm, concurrency } = ctx.services;
    const slot = takesSlot && key.maxConcurrent !== null ? concurrency.slotFor(key.id, key.maxConcurrent) : undefined;
    const decision = (await ctx.state.earlyRpm?.use()) ?? (await rpm.take(key.id, key.rpmLimit, requestId, slot));
    ctx.set('x-ratelimit-limit-requests', String(decision.limit));
    ctx.set('x-ratelimit-remaining-requests', String(decision.remaining));
    ctx.set('x-ratelimit-reset-requests', formatResetDuration(decision.resetMs));
    if (decision.busy) {
      throw new ApiError('rate_limit_exceeded', `this key already has ${key.maxConcurrent} requests in flight (max_concurrent_requests)`, {
        retryAfter: 1,
      });
    }
    if (!decision.admitted) {
      throw new ApiError('rate_limit_exceeded', `rate limit of ${decision.limit} requests per minute reached for this key`, {
        retryAfter: Math.max(1, Math.ceil(decision.resetMs / 1000)),
      });
    }
    if (!slot) return next();
    const held = concurrency.adopt(slot, requestId);
    const release = () => held.release();
    ctx.res.on('close', release); // a response closes once: `on` spares a held stream the once-wrapper
    try {
      await next();
    } finally {
      // freed before the answer is written (the client's next request finds it free, whichever process takes
      // it), or, for a response still being written after the chain returned, when that response ends
      if (!ctx.state.detached) {
        ctx.res.off('close', release);
        release();
      }
    }
  };
}

/** The RPM step of a route whose requests take no concurrency slot (listing models, count_tokens, …). */
export const rateLimit = rpmStep(false);

function holdStep<B extends { model: string }>(door: FrontDoor<B>): AppMiddleware {
  return async (ctx, next) => {
    const model = ctx.state.model!;
    const key = customerKey(ctx);
    const owner = { requestId: ctx.state.requestId, userId: key.userId, keyId: key.id, channelId: ctx.state.channel!.id };
    const worstCase = door.worstCase(ctx.state.body as B, model);
    await yieldIfLarge(ctx);
    ctx.state.reservation = await reserve(ctx.services.db, owner, model.prices, model.maxOutputTokens, worstCase);
    recordStage('admission', contextWith(ctx.state.span), ctx.state.admissionStartedAt ?? Date.now());
    await next();
  };
}

/** The admission chain of a front door, in SPEC §2 order (the route's guard has already run). */
export function admission<B extends { model: string }>(door: FrontDoor<B>): AppMiddleware[] {
  return [bodyStep(door.schema, door.checkBody, door.load), modelStep(door, true), rpmStep(true), holdStep(door)];
}

/**
 * Admission for requests that are counted but never billed (`/v1/messages/count_tokens`): body → model →
 * RPM; no concurrency slot, no hold.
 */
export function admissionWithoutHold<B extends { model: string }>(door: FrontDoor<B>): AppMiddleware[] {
  return [bodyStep(door.schema, door.checkBody, door.load), modelStep(door, false), rateLimit];
}

/**
 * The part of every job admission decides: who pays, what was held, which routes (and queue), and the
 * deadline. `held: false` for a job admitted without a hold (it bills nothing).
 */
export function jobBase(ctx: AppContext, kind: JobKind, held = true): JobBase {
  const key = customerKey(ctx);
  const { model, channel, reservation } = held ? admitted(ctx) : admittedWithoutHold(ctx);
  return {
    requestId: ctx.state.requestId,
    webId: ctx.services.relay.webId,
    userId: key.userId,
    keyId: key.id,
    model: model.id,
    channelId: channel.id,
    routes: ctx.state.routes!,
    homeRoute: ctx.state.homeRoute ?? 0,
    prices: encodePrices(model.prices),
    holdNano: (reservation?.holdNano ?? 0n).toString(),
    deadlineAt: deadlineFor(kind, ctx.services.config),
    trace: carrierOf(ctx.state.span),
  };
}

/**
 * Listens on the relay, then enqueues the job (so no frame can be missed). If the enqueue fails (Redis
 * unreachable: the client gets 500), the request is made unbillable at once, in case the job got in anyway.
 */
export async function enqueue(ctx: AppContext, job: JobData): Promise<RelayStream> {
  const svc = ctx.services;
  const relay = svc.relay.open(job.requestId);
  const span = startStage('enqueue', contextWith(ctx.state.span));
  await yieldIfLarge(ctx);
  try {
    await svc.jobs.add(job, ctx.state.bodyLength ?? 0);
  } catch (err) {
    svc.relay.close(job.requestId);
    await voidNowOrLater(svc.db, svc.redis, svc.keys, job.requestId).catch(() =>
      log.error({ requestId: job.requestId }, 'neither MariaDB nor Redis answers: a refused request may stay billable'),
    );
    throw err;
  } finally {
    span.end();
  }
  return relay;
}
