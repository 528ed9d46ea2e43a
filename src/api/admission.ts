import type { z } from 'zod';
import { type Reservation, reserve, type WorstCase } from '../billing/reserve.js';
import { voidNowOrLater } from '../billing/unbillable.js';
import type { Channel, Model } from '../catalog/catalog.js';
import type { Modality } from '../db/schema.js';
import { parseBody, yieldIfLarge } from '../http/body.js';
import { ApiError, badRequest } from '../http/errors.js';
import { type AppContext, type AppMiddleware, customerKey, principal } from '../http/state.js';
import { formatResetDuration } from '../limits/rpm.js';
import { log } from '../log.js';
import { deadlineFor, encodePrices, type JobBase, type JobData, type JobKind } from '../queue/jobs.js';
import type { RelayStream } from '../queue/web-relay.js';
import { carrierOf, contextWith, recordStage, startStage } from '../telemetry.js';
import { type Demand, unservable } from '../upstream/providers/registry.js';

/**
 * Admission (SPEC §2 check order): auth (the route's guard) → body → model → RPM → hold. Each step is a
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
  /** What the model's channel must be able to serve, and 400s about this body on this model. */
  demand(body: B, model: Model): Demand;
  worstCase(body: B, model: Model): WorstCase;
}

/** What admission found, for the handler: the body, the model, its channel and the hold. */
export interface Admitted<B> {
  body: B;
  model: Model;
  channel: Channel;
  reservation: Reservation;
}

export function admitted<B>(ctx: AppContext): Admitted<B> {
  const { body, model, channel, reservation } = ctx.state;
  principal(ctx, 'customer');
  if (body === undefined || !model || !channel || !reservation) throw new Error('handler reached without admission');
  return { body: body as B, model, channel, reservation };
}

export function bodyStep<B>(schema: z.ZodType<B>, checkBody?: (body: B) => void): AppMiddleware {
  return async (ctx, next) => {
    ctx.state.admissionStartedAt = Date.now();
    const body = await parseBody(ctx, schema, ctx.services.config.bodyLimitBytes);
    checkBody?.(body);
    ctx.state.body = body;
    await next();
  };
}

/** The catalog entry a /v1 request names (SPEC §2: unknown, coming-soon or disabled → 404), read once. */
export async function findModel(ctx: AppContext, id: string): Promise<{ model: Model; channel: Channel }> {
  const catalog = await ctx.services.catalog.at(principal(ctx, 'customer').catalogVersion);
  const model = catalog.models.get(id);
  const channel = model && catalog.channels.get(model.channelId);
  if (model?.status !== 'active' || !channel)
    throw new ApiError('model_not_found', `model ${JSON.stringify(id)} does not exist or is not available`, { param: 'model' });
  return { model, channel };
}

function modelStep<B extends { model: string }>(door: FrontDoor<B>): AppMiddleware {
  return async (ctx, next) => {
    const body = ctx.state.body as B;
    const { model, channel } = await findModel(ctx, body.model);
    if (model.modality !== door.modality) {
      throw new ApiError(
        'wrong_endpoint',
        `model ${model.id} is a ${model.modality} model; ${door.endpoint} takes ${door.modality} models`,
        { param: 'model' },
      );
    }
    const problem = unservable(channel, door.demand(body, model));
    if (problem) throw badRequest(`${problem[0]}: ${problem[1]}`, problem[0]);
    ctx.state.model = model;
    ctx.state.channel = channel;
    await next();
  };
}

/** RPM step: counts the request, sets the x-ratelimit headers, 429 past the key's limit. */
export const rateLimit: AppMiddleware = async (ctx, next) => {
  const key = customerKey(ctx);
  const decision = await ctx.services.rpm.take(key.id, key.rpmLimit, ctx.state.requestId);
  ctx.set('x-ratelimit-limit-requests', String(decision.limit));
  ctx.set('x-ratelimit-remaining-requests', String(decision.remaining));
  ctx.set('x-ratelimit-reset-requests', formatResetDuration(decision.resetMs));
  if (!decision.admitted) {
    throw new ApiError('rate_limit_exceeded', `rate limit of ${decision.limit} requests per minute reached for this key`, {
      retryAfter: Math.max(1, Math.ceil(decision.resetMs / 1000)),
    });
  }
  await next();
};

function holdStep<B extends { model: string }>(door: FrontDoor<B>): AppMiddleware {
  return async (ctx, next) => {
    const model = ctx.state.model!;
    const key = customerKey(ctx);
    const owner = { requestId: ctx.state.requestId, userId: key.userId, keyId: key.id, channelId: model.channelId };
    const worstCase = door.worstCase(ctx.state.body as B, model);
    await yieldIfLarge(ctx);
    ctx.state.reservation = await reserve(ctx.services.db, owner, model.prices, model.maxOutputTokens, worstCase);
    recordStage('admission', contextWith(ctx.state.span), ctx.state.admissionStartedAt ?? Date.now());
    await next();
  };
}

/** The admission chain of a front door, in SPEC §2 order (the route's guard has already run). */
export function admission<B extends { model: string }>(door: FrontDoor<B>): AppMiddleware[] {
  return [bodyStep(door.schema, door.checkBody), modelStep(door), rateLimit, holdStep(door)];
}

/** The part of every job admission decides: who pays, what was held, which channel, and the deadline. */
export function jobBase(ctx: AppContext, kind: JobKind): JobBase {
  const key = customerKey(ctx);
  const { model, reservation } = admitted(ctx);
  return {
    requestId: ctx.state.requestId,
    webId: ctx.services.relay.webId,
    userId: key.userId,
    keyId: key.id,
    model: model.id,
    channelId: model.channelId,
    upstreamModel: model.upstreamModel,
    prices: encodePrices(model.prices),
    holdNano: reservation.holdNano.toString(),
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
