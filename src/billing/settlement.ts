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
 * row is the token. The first statement locks it (writing it, as a no-op, so that the lock is exclusive: a
 * release waits for this transaction) and moves the money (the hold's own amount leaves `held`);
 * the ledger row and the account's daily usage (usage_daily, read by the console) are written only while
 * that hold row is there, and the last statement deletes it. A second settlement of the same request finds
 * no hold and changes nothing (the ledger's unique request id guards the same). Each statement decides by
 * the hold row, never by ROW_COUNT(): MariaDB runs a script whose client has gone (a connection cut) on to
 * its COMMIT, and the result it then fails to send sets ROW_COUNT() to -1 for the next statement.
 * Concurrent settlements of a process go to MySQL together: one transaction, one round trip.
 */
const SETTLE_STATEMENTS = `
UPDATE holds h JOIN users u ON u.id = h.user_id JOIN api_keys k ON k.id = h.key_id
  SET h.channel_id = h.channel_id,
      u.balance_nano = u.balance_nano - ?, u.held_nano = u.held_nano - h.amount_nano,
      k.spent_nano = k.spent_nano + ?, k.held_nano = k.held_nano - h.amount_nano, k.last_used_at = CURRENT_TIMESTAMP(3)
  WHERE h.request_id = ?;
INSERT INTO ledger (request_id, user_id, key_id, kind, model, prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, images, amount_nano, estimated)
  SELECT h.request_id, h.user_id, h.key_id, 'charge', ?, ?, ?, ?, ?, ?, ?, ? FROM holds h WHERE h.request_id = ? AND ? > 0;
INSERT INTO usage_daily (user_id, day, model, requests, prompt_tokens, completion_tokens, images, spent_nano)
  SELECT l.user_id, DATE(l.created_at), l.model, 1, l.prompt_tokens, l.completion_tokens, l.images, -l.amount_nano
  FROM ledger l JOIN holds h ON h.request_id = l.request_id WHERE l.request_id = ?
  ON DUPLICATE KEY UPDATE usage_daily.requests = usage_daily.requests + 1,
    usage_daily.prompt_tokens = usage_daily.prompt_tokens + VALUES(prompt_tokens),
    usage_daily.completion_tokens = usage_daily.completion_tokens + VALUES(completion_tokens),
    usage_daily.images = usage_daily.images + VALUES(images), usage_daily.spent_nano = usage_daily.spent_nano + VALUES(spent_nano);
DELETE FROM holds WHERE request_id = ?;`;

/** The charge: the computed cost, never more than what was held for the request. */
const chargeOf = (s: Settlement) => {
  const computed = costNano(s.prices, s.usage);
  // biome-ignore lint/complexity/useMathMinMax: bigints (Math.min takes numbers)
  return computed > s.holdNano ? s.holdNano : computed;
};

const settleMany = (db: Db, settlements: Settlement[]) =>
  runItemScript(db, settlements, {
    statements: SETTLE_STATEMENTS,
    resultsPerItem: 4, // UPDATE, INSERT ledger, upsert usage_daily, DELETE (did a hold exist?)
    accountOf: (s) => s.userId,
    paramsOf: (s) => {
      const cost = chargeOf(s);
      return [
        cost,
        cost,
        s.requestId,
        s.model,
        s.usage.promptTokens,
        s.usage.completionTokens,
        s.usage.cachedTokens ?? 0,
        s.usage.cacheWriteTokens ?? 0,
        s.usage.images,
        -cost,
        s.estimated ? 1 : 0,
        s.requestId,
        cost,
        s.requestId,
        s.requestId,
      ];
    },
    resultOf: ([, , , deleted], s): SettlementOutcome => ({
      costNano: chargeOf(s),
      applied: (deleted as { affectedRows: number }).affectedRows > 0,
    }),
  });

const settlementBatcher = batcherPer((db: Db) => new MicroBatcher((items: Settlement[]) => settleMany(db, items)));

export function settle(db: Db, settlement: Settlement): Promise<SettlementOutcome> {
  return settlementBatcher(db).submit(settlement);
}
