import { sql } from 'kysely';
import { z } from 'zod';
import type { Db } from '../db/index.js';
import { badRequest } from '../http/errors.js';

/**
 * Spend per UTC day and model over a range, from the usage_daily rollup (primary key user_id, day, model):
 * one index range read of at most days × models rows, whatever the size of the ledger.
 */
export interface UsageRange {
  /** YYYY-MM-DD, inclusive, UTC */
  from: string;
  to: string;
}

export interface UsageRow {
  day: string;
  model: string;
  requests: number;
  promptTokens: number;
  completionTokens: number;
  images: number;
  spentNano: bigint;
}

const DAY_MS = 86_400_000;
export const MAX_DAYS = 366;
const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const dayMs = (day: string) => Date.parse(`${day}T00:00:00Z`);

const dayParam = z
  .string({ error: 'must be given once, as YYYY-MM-DD' })
  .regex(/^\d{4}-\d{2}-\d{2}$/, 'must be a date, YYYY-MM-DD')
  .refine((d) => !Number.isNaN(dayMs(d)) && isoDay(dayMs(d)) === d, 'must be a real date, YYYY-MM-DD');

const rangeQuery = z.object({ from: dayParam.optional(), to: dayParam.optional() });

/** The range asked for (`?from=&to=`), by default the last 30 days; at most a year, `from` ≤ `to`. */
export function rangeFrom(query: unknown, now = Date.now()): UsageRange {
  const parsed = rangeQuery.safeParse(query);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw badRequest(`${issue.path.join('.')}: ${issue.message}`);
  }
  const to = parsed.data.to ?? isoDay(now);
  const from = parsed.data.from ?? isoDay(dayMs(to) - 29 * DAY_MS);
  if (dayMs(from) > dayMs(to)) throw badRequest('from: must not be after to');
  if ((dayMs(to) - dayMs(from)) / DAY_MS + 1 > MAX_DAYS) throw badRequest(`from: the range is at most ${MAX_DAYS} days`);
  return { from, to };
}

/** Every day of the range, in order. */
export function daysOf(range: UsageRange): string[] {
  const days: string[] = [];
  for (let ms = dayMs(range.from); ms <= dayMs(range.to); ms += DAY_MS) days.push(isoDay(ms));
  return days;
}

export async function usageRows(db: Db, userId: number, range: UsageRange): Promise<UsageRow[]> {
  const rows = await db
    .selectFrom('usage_daily')
    .select([
      sql<string>`DATE_FORMAT(day, '%Y-%m-%d')`.as('day'),
      'model',
      'requests',
      'prompt_tokens',
      'completion_tokens',
      'images',
      'spent_nano',
    ])
    .where('user_id', '=', userId)
    .where('day', '>=', range.from)
    .where('day', '<=', range.to)
    .orderBy('day')
    .orderBy('model')
    .execute();
  return rows.map((r) => ({
    day: r.day,
    model: r.model,
    requests: Number(r.requests),
    promptTokens: Number(r.prompt_tokens),
    completionTokens: Number(r.completion_tokens),
    images: Number(r.images),
    spentNano: BigInt(r.spent_nano),
  }));
}

/** A model's usage summed over every day of the range. */
export type ModelTotal = Omit<UsageRow, 'day'>;

/** Totals per model over the range, biggest spend first. */
export function totalsByModel(rows: UsageRow[]): ModelTotal[] {
  const totals = new Map<string, ModelTotal>();
  for (const r of rows) {
    const t = totals.get(r.model) ?? { model: r.model, requests: 0, promptTokens: 0, completionTokens: 0, images: 0, spentNano: 0n };
    t.requests += r.requests;
    t.promptTokens += r.promptTokens;
    t.completionTokens += r.completionTokens;
    t.images += r.images;
    t.spentNano += r.spentNano;
    totals.set(r.model, t);
  }
  return [...totals.values()].sort((a, b) =>
    b.spentNano > a.spentNano ? 1 : b.spentNano < a.spentNano ? -1 : a.model.localeCompare(b.model),
  );
}
