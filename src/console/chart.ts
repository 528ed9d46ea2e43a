import type { UsageRow } from './usage-report.js';

/**
 * The /usage chart as plain geometry for an SVG template: one stacked bar per day, one colour per model
 * (the six biggest, the rest as "other"). No script, no inline style: colours come from the stylesheet
 * classes s0…s6, so the page keeps its strict CSP.
 */
const WIDTH = 760;
const HEIGHT = 240;
const MARGIN = { left: 64, right: 8, top: 12, bottom: 28 };
const MAX_SERIES = 6;

export interface Chart {
  width: number;
  height: number;
  plot: { left: number; top: number; right: number; bottom: number };
  bars: Array<{
    day: string;
    x: number;
    width: number;
    total: string;
    segments: Array<{ series: number; y: number; height: number; title: string }>;
  }>;
  ticks: Array<{ y: number; label: string }>;
  labels: Array<{ x: number; text: string }>;
  legend: Array<{ series: number; name: string }>;
}

const usdLabel = (usd: number, step: number) => `$${usd.toFixed(Math.max(0, Math.min(9, -Math.floor(Math.log10(step)))))}`;

/** A round axis step (1, 2 or 5 × 10ⁿ USD) giving about four gridlines. */
function niceStep(maxUsd: number): number {
  const raw = maxUsd / 4;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? 10 * magnitude;
}

const nanoUsd = (nano: bigint) => Number(nano) / 1e9;

export function spendChart(days: string[], rows: UsageRow[], modelsBySpend: string[]): Chart {
  const named = modelsBySpend.slice(0, MAX_SERIES);
  const seriesOf = (model: string) => (named.includes(model) ? named.indexOf(model) : MAX_SERIES);
  const perDay = new Map<string, bigint[]>(days.map((d) => [d, new Array<bigint>(MAX_SERIES + 1).fill(0n)]));
  for (const r of rows) perDay.get(r.day)![seriesOf(r.model)] += r.spentNano;

  const totals = days.map((d) => perDay.get(d)!.reduce((a, b) => a + b, 0n));
  const maxUsd = Math.max(...totals.map(nanoUsd), 0);
  const step = maxUsd > 0 ? niceStep(maxUsd) : 1;
  const top = maxUsd > 0 ? Math.ceil(maxUsd / step) * step : 4;
  const plot = { left: MARGIN.left, top: MARGIN.top, right: WIDTH - MARGIN.right, bottom: HEIGHT - MARGIN.bottom };
  const plotHeight = plot.bottom - plot.top;
  const slot = (plot.right - plot.left) / Math.max(days.length, 1);
  const yOf = (usd: number) => plot.bottom - (usd / top) * plotHeight;

  const bars = days.map((day, i) => {
    let base = 0;
    const segments = perDay
      .get(day)!
      .map((nano, series) => ({ nano, series }))
      .filter((s) => s.nano > 0n)
      .map(({ nano, series }) => {
        const usd = nanoUsd(nano);
        const y = yOf(base + usd);
        const height = Math.max(yOf(base) - y, 0.5);
        base += usd;
        return {
          series,
          y: round(y),
          height: round(height),
          title: `${day} · ${series < MAX_SERIES ? named[series] : 'other models'} · $${usd.toFixed(6)}`,
        };
      });
    return {
      day,
      x: round(plot.left + i * slot + slot * 0.1),
      width: round(Math.max(slot * 0.8, 1)),
      total: `$${nanoUsd(totals[i]).toFixed(6)}`,
      segments,
    };
  });

  const ticks = [];
  for (let usd = 0; usd <= top + step / 2; usd += step) ticks.push({ y: round(yOf(usd)), label: usdLabel(usd, step) });
  const every = Math.ceil(days.length / 8);
  const labels = days.map((day, i) => ({ x: round(plot.left + (i + 0.5) * slot), text: day.slice(5) })).filter((_, i) => i % every === 0);
  const legend = [
    ...named.map((name, series) => ({ series, name })),
    ...(modelsBySpend.length > MAX_SERIES ? [{ series: MAX_SERIES, name: 'other models' }] : []),
  ];
  return { width: WIDTH, height: HEIGHT, plot, bars, ticks, labels, legend };
}

const round = (n: number) => Math.round(n * 10) / 10;
