import { batcherPer, MicroBatcher, runItemScript } from '../db/batcher.js';
import type { Db } from '../db/index.js';
import { costNano, type Prices, type Usage } from './money.js';

export interface Settlement {
  requestId: string;
  userId: number;
  keyId: number;
  model: string;
  prices: Prices;
  usage: Usage;
  /** The worst case held for this request; the charge never exceeds it. */
  holdNano: bigint;
  estimated: boolean;
}

export interface SettlementOutcome {
  costNano: bigint;
  /** false when this request id was already settled (a re-delivered job): nothing changed. */
  applied: boolean;
}

/**
 * Debits the actual cost and releases the hold in one transaction, exactly once per request id: the hold
 * row is the token. Deleting it (under its row lock) decides whether this settlement applies; a second
 * settlement of the same request finds no hold and changes nothing (the ledger's unique request id guards
 * the same); the charge is also added to the account's daily usage row (usage_daily, read by the console).
 * Concurrent settlements of a process go to MySQL together: one transaction, one round trip.
 */
const SETTLE_STATEMENTS = `
DELETE FROM holds WHERE request_id = ?;
UPDATE users u JOIN api_keys k ON k.id = ? AND k.user_id = u.id
  SET u.balance_nano = u.balance_nano - ?, u.held_nano = u.held_nano - ?,
      k.spent_nano = k.spent_nano + ?, k.held_nano = k.held_nano - ?, k.last_used_at = CURRENT_TIMESTAMP(3)
  WHERE u.id = ? AND ROW_COUNT() > 0;
INSERT INTO ledger (request_id, user_id, key_id, kind, model, prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, images, amount_nano, estimated)
  SELECT ?, ?, ?, 'charge', ?, ?, ?, ?, ?, ?, ?, ? FROM DUAL WHERE ROW_COUNT() > 0 AND ? > 0;
INSERT INTO usage_daily (user_id, day, model, requests, prompt_tokens, completion_tokens, images, spent_nano)
  SELECT l.user_id, DATE(l.created_at), l.model, 1, l.prompt_tokens, l.completion_tokens, l.images, -l.amount_nano
  FROM ledger l WHERE l.id = LAST_INSERT_ID() AND ROW_COUNT() > 0
  ON DUPLICATE KEY UPDATE usage_daily.requests = usage_daily.requests + 1,
    usage_daily.prompt_tokens = usage_daily.prompt_tokens + VALUES(prompt_tokens),
    usage_daily.completion_tokens = usage_daily.completion_tokens + VALUES(completion_tokens),
    usage_daily.images = usage_daily.images + VALUES(images), usage_daily.spent_nano = usage_daily.spent_nano + VALUES(spent_nano);`;

/** The charge: the computed cost, never more than what was held for the request. */
const chargeOf = (s: Settlement) => {
  const computed = costNano(s.prices, s.usage);
  // biome-ignore lint/complexity/useMathMinMax: bigints (Math.min takes numbers)
  return computed > s.holdNano ? s.holdNano : computed;
};

const settleMany = (db: Db, settlements: Settlement[]) =>
  runItemScript(db, settlements, {
    statements: SETTLE_STATEMENTS,
    resultsPerItem: 4, // DELETE (did a hold exist?), UPDATE, INSERT ledger, upsert usage_daily
    accountOf: (s) => s.userId,
    paramsOf: (s) => {
      const cost = chargeOf(s);
      return [
        s.requestId,
        s.keyId,
        cost,
        s.holdNano,
        cost,
        s.holdNano,
        s.userId,
        s.requestId,
        s.userId,
        s.keyId,
        s.model,
        s.usage.promptTokens,
        s.usage.completionTokens,
        s.usage.cachedTokens ?? 0,
        s.usage.cacheWriteTokens ?? 0,
        s.usage.images,
        -cost,
        s.estimated ? 1 : 0,
        cost,
      ];
    },
    resultOf: ([deleted], s): SettlementOutcome => ({
      costNano: chargeOf(s),
      applied: (deleted as { affectedRows: number }).affectedRows > 0,
    }),
  });

const settlementBatcher = batcherPer((db: Db) => new MicroBatcher((items: Settlement[]) => settleMany(db, items)));

export function settle(db: Db, settlement: Settlement): Promise<SettlementOutcome> {
  return settlementBatcher(db).submit(settlement);
}
