import type { Db } from '../db/index.js';
import { ApiError } from '../http/errors.js';
import { placeHold, readFunds, spendable } from './holds.js';
import { affordableOutputTokens, costNano, type Prices, worstCasePrices } from './money.js';

/** The smallest answer worth holding for: a request that cannot afford this many output tokens gets 402. */
export const MIN_OUTPUT_TOKENS = 16;

/** What a hold must cover in the worst case (SPEC §3). */
export interface WorstCase {
  promptTokens: number;
  /**
   * The client's output limit, lowered to the model's `max_output_tokens` (clients such as Claude Code ask
   * the same large limit of every model); without one the hold covers the model's cap or what the account
   * affords.
   */
  requestedOutput?: number;
  images?: number;
  choices?: number;
}

export interface Reservation {
  holdNano: bigint;
  /** Output tokens the hold covers; sent upstream when the client gave no limit, or a higher one. */
  maxOutputTokens: number;
}

export interface HoldOwner {
  requestId: string;
  userId: number;
  keyId: number;
  channelId: number;
}

/**
 * Holds the worst case before anything is enqueued (SPEC §3). A client output limit above the model's
 * `max_output_tokens` is lowered to it. Without a client output limit the hold covers
 * the model's `max_output_tokens`, or the most the account (and the key's cap) can afford below it; fewer
 * than MIN_OUTPUT_TOKENS affordable → 402 with whichever limit binds.
 */
export async function reserve(
  db: Db,
  owner: HoldOwner,
  modelPrices: Prices,
  maxOutputTokens: number,
  demand: WorstCase,
): Promise<Reservation> {
  const prices = worstCasePrices(modelPrices);
  const choices = demand.choices ?? 1;
  const images = demand.images ?? 0;
  const worst = (output: number) => costNano(prices, { promptTokens: demand.promptTokens, completionTokens: output * choices, images });
  const hold = (amountNano: bigint) => placeHold(db, { ...owner, amountNano });

  const requested = demand.requestedOutput === undefined ? undefined : Math.min(demand.requestedOutput, maxOutputTokens);
  const firstTry = requested ?? maxOutputTokens;
  if (await hold(worst(firstTry))) return { holdNano: worst(firstTry), maxOutputTokens: firstTry };

  const { budgetNano, limitedBy } = spendable(await readFunds(db, owner.userId, owner.keyId));
  const refusal = () =>
    new ApiError(
      limitedBy,
      limitedBy === 'cap_reached'
        ? "this request's worst-case cost would exceed the key's spend cap"
        : "this request's worst-case cost exceeds the available balance",
    );
  if (requested !== undefined) throw refusal();
  const imageCost = costNano(prices, { promptTokens: 0, completionTokens: 0, images });
  const affordable = Math.floor(affordableOutputTokens(prices, demand.promptTokens, budgetNano - imageCost) / choices);
  const output = Math.min(affordable, maxOutputTokens);
  if (output < MIN_OUTPUT_TOKENS || !(await hold(worst(output)))) throw refusal();
  return { holdNano: worst(output), maxOutputTokens: output };
}
