import type { Context } from 'koa';
import type { AuthKey } from '../accounts/key-store.js';
import { placeHold, readFunds, spendable } from '../billing/holds.js';
import { voidNowOrLater } from '../billing/unbillable.js';
import { affordableOutputTokens, costNano } from '../billing/money.js';
import type { Model } from '../catalog/catalog.js';
import { ApiError } from '../http/errors.js';
import { formatResetDuration } from '../limits/rpm.js';
import { log } from '../log.js';
import type { JobBase, JobData } from '../queue/jobs.js';
import type { RelayStream } from '../queue/relay.js';
import type { WebServices } from '../services.js';

/** The smallest answer worth holding for: a request that cannot afford this many output tokens gets 402. */
export const MIN_OUTPUT_TOKENS = 16;

/** The catalog entry a /v1 request names (SPEC §2: unknown, coming-soon or disabled → 404). */
export async function findModel(ctx: Context, svc: WebServices, id: string): Promise<Model> {
  const catalog = await svc.catalog.at(ctx.state.catalogVersion ?? null);
  const model = catalog.models.get(id);
  if (!model || model.status !== 'active') throw new ApiError('model_not_found', `model ${JSON.stringify(id)} does not exist or is not available`);
  return model;
}

export function requireModality(model: Model, modality: Model['modality'], endpoint: string): void {
  if (model.modality !== modality) {
    throw new ApiError('wrong_endpoint', `model ${model.id} is a ${model.modality} model; ${endpoint} takes ${modality} models`);
  }
}

/** RPM step: counts the request, sets the x-ratelimit headers, 429 past the key's limit. */
export async function rateLimit(ctx: Context, svc: WebServices): Promise<void> {
  const key = ctx.state.apiKey as AuthKey;
  const decision = await svc.rpm.take(key.id, key.rpmLimit, ctx.state.requestId);
  ctx.set('x-ratelimit-limit-requests', String(decision.limit));
  ctx.set('x-ratelimit-remaining-requests', String(decision.remaining));
  ctx.set('x-ratelimit-reset-requests', formatResetDuration(decision.resetMs));
  if (!decision.admitted) {
    throw new ApiError('rate_limit_exceeded', `rate limit of ${decision.limit} requests per minute reached for this key`, {
      retryAfter: Math.max(1, Math.ceil(decision.resetMs / 1000)),
    });
  }
}

export interface Reservation {
  holdNano: bigint;
  /** Output tokens the hold covers; sent upstream when the client gave no limit. */
  maxOutputTokens: number;
}

/**
 * Balance and cap step (SPEC §3): hold the worst case before enqueueing. `requestedOutput` is the client's
 * max_tokens; without one the hold covers the model's cap, or the most the account can afford below it.
 */
export async function reserve(
  ctx: Context,
  svc: WebServices,
  model: Model,
  demand: { promptTokens: number; requestedOutput?: number; images?: number; choices?: number },
): Promise<Reservation> {
  const key = ctx.state.apiKey as AuthKey;
  const choices = demand.choices ?? 1;
  const worst = (output: number) =>
    costNano(model.prices, { promptTokens: demand.promptTokens, completionTokens: output * choices, images: demand.images ?? 0 });
  const hold = (amountNano: bigint) =>
    placeHold(svc.db, { requestId: ctx.state.requestId, userId: key.userId, keyId: key.id, channelId: model.channelId, amountNano });

  const firstTry = demand.requestedOutput ?? model.maxOutputTokens;
  if (await hold(worst(firstTry))) return { holdNano: worst(firstTry), maxOutputTokens: firstTry };

  const { budgetNano, limitedBy } = spendable(await readFunds(svc.db, key.userId, key.id));
  const refusal = () =>
    new ApiError(limitedBy, limitedBy === 'cap_reached'
      ? "this request's worst-case cost would exceed the key's spend cap"
      : "this request's worst-case cost exceeds the available balance");
  if (demand.requestedOutput !== undefined) throw refusal();
  const imageCost = costNano(model.prices, { promptTokens: 0, completionTokens: 0, images: demand.images ?? 0 });
  const affordable = Math.floor(affordableOutputTokens(model.prices, demand.promptTokens, budgetNano - imageCost) / choices);
  const output = Math.min(affordable, model.maxOutputTokens);
  if (output < MIN_OUTPUT_TOKENS || !(await hold(worst(output)))) throw refusal();
  return { holdNano: worst(output), maxOutputTokens: output };
}

export function jobBase(ctx: Context, svc: WebServices, model: Model, holdNano: bigint, deadlineMs: number): JobBase {
  const key = ctx.state.apiKey as AuthKey;
  return {
    requestId: ctx.state.requestId,
    webId: svc.relay.webId,
    userId: key.userId,
    keyId: key.id,
    model: model.id,
    channelId: model.channelId,
    upstreamModel: model.upstreamModel,
    prices: {
      inputMicro: model.prices.inputMicro.toString(),
      outputMicro: model.prices.outputMicro.toString(),
      imageNano: model.prices.imageNano.toString(),
    },
    holdNano: holdNano.toString(),
    deadlineAt: Date.now() + deadlineMs,
  };
}

/**
 * Listens on the relay, then enqueues the job (so no message can be missed). If the enqueue fails (Redis
 * unreachable: the client gets 500), the request is made unbillable at once, in case the job got in anyway.
 */
export async function enqueue(svc: WebServices, job: JobData): Promise<RelayStream> {
  const relay = svc.relay.open(job.requestId);
  try {
    await svc.jobs.add(job);
  } catch (err) {
    svc.relay.close(job.requestId);
    await voidNowOrLater(svc.db, svc.redis, svc.keys, job.requestId).catch(() =>
      log.error({ requestId: job.requestId }, 'neither MariaDB nor Redis answers: a refused request may stay billable'),
    );
    throw err;
  }
  return relay;
}
