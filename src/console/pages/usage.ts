import { stringify } from 'csv-stringify/sync';
import { formatUsd } from '../../billing/money.js';
import { type AppContext, principal } from '../../http/state.js';
import { spendChart } from '../chart.js';
import { daysOf, rangeFrom, totalsByModel, type UsageRange, usageRows } from '../usage-report.js';
import { render } from '../views.js';

/** /usage: spend per day and model over a chosen range, as a chart and a table; /usage.csv the same rows. */

const account = (ctx: AppContext) => principal(ctx, 'account');

async function report(ctx: AppContext, range: UsageRange) {
  const rows = await usageRows(ctx.services.db, account(ctx).user.id, range);
  return { rows, totals: totalsByModel(rows) };
}

export async function showUsage(ctx: AppContext): Promise<void> {
  const range = rangeFrom(ctx.query);
  const { rows, totals } = await report(ctx, range);
  const spent = totals.reduce((sum, t) => sum + t.spentNano, 0n);
  render(ctx, 'usage.njk', {
    title: 'Usage',
    range,
    chart: spendChart(
      daysOf(range),
      rows,
      totals.map((t) => t.model),
    ),
    rows: rows.map((r) => ({ ...r, spent: formatUsd(r.spentNano) })).reverse(),
    totals: totals.map((t) => ({ ...t, spent: formatUsd(t.spentNano) })),
    spent: formatUsd(spent),
    requests: totals.reduce((sum, t) => sum + t.requests, 0),
    csvQuery: new URLSearchParams({ from: range.from, to: range.to }).toString(),
  });
}

export async function usageCsv(ctx: AppContext): Promise<void> {
  const range = rangeFrom(ctx.query);
  const { rows } = await report(ctx, range);
  ctx.type = 'text/csv; charset=utf-8';
  ctx.set('content-disposition', `attachment; filename="eastx-usage-${range.from}-to-${range.to}.csv"`);
  ctx.set('cache-control', 'no-store');
  ctx.body = stringify(
    rows.map((r) => [r.day, r.model, r.requests, r.promptTokens, r.completionTokens, r.images, formatUsd(r.spentNano)]),
    {
      header: true,
      columns: ['day', 'model', 'requests', 'prompt_tokens', 'completion_tokens', 'images', 'cost_usd'],
      escape_formulas: true,
    },
  );
}
