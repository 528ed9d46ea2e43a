/**
 * Money in one place (SPEC §3). Amounts are bigint nano-USD (1e-9 USD); token prices are bigint
 * micro-USD per 1M tokens; image prices are bigint nano-USD per image. Nothing else multiplies prices.
 */
export type Nano = bigint;

export interface Prices {
  inputMicro: bigint;
  outputMicro: bigint;
  imageNano: bigint;
  /** Prompt tokens served from the upstream's cache, micro-USD per 1M; absent = the input price. */
  cacheReadMicro?: bigint;
  /** Prompt tokens written to the upstream's cache, micro-USD per 1M; absent = the input price. */
  cacheWriteMicro?: bigint;
}

export interface Usage {
  /** Every prompt token, the cached and cache-written ones included (OpenAI's `prompt_tokens`). */
  promptTokens: number;
  /** Output tokens, reasoning tokens included. */
  completionTokens: number;
  images: number;
  /** Of `promptTokens`, those read from the upstream's prompt cache (default 0). */
  cachedTokens?: number;
  /** Of `promptTokens`, those written to the upstream's prompt cache (default 0). */
  cacheWriteTokens?: number;
}

/**
 * The most tokens of one kind one request is billed for. Far above any model's context (millions of tokens),
 * so no real count is touched; it keeps an upstream's absurd count (1e12) writable in the ledger's INT
 * (signed 32-bit) token columns. The money needs no such bound: a charge never exceeds the request's hold.
 */
export const MAX_TOKEN_COUNT = 1_000_000_000;

function ceilDiv(a: bigint, b: bigint): bigint {
  return a <= 0n ? 0n : (a + b - 1n) / b;
}

const count = (tokens: number | undefined) => BigInt(Math.max(0, Math.trunc(tokens ?? 0)));

/**
 * SPEC §3, one rounding:
 * `ceil((plain_in × in + cached × cache_read + cache_write × cache_write_price + out × out_price) / 1000)`
 * nano-USD, plus `images × price_per_image`, where plain_in = prompt − cached − cache_write. Cached and
 * cache-write counts are parts of the prompt count; an upstream reporting more of them than prompt tokens
 * is believed for the parts (plain_in is then 0), never billed for negative tokens.
 */
export function costNano(prices: Prices, usage: Usage): Nano {
  const cached = count(usage.cachedTokens);
  const cacheWrite = count(usage.cacheWriteTokens);
  const prompt = count(usage.promptTokens);
  const plain = prompt > cached + cacheWrite ? prompt - cached - cacheWrite : 0n;
  const tokens =
    plain * prices.inputMicro +
    cached * (prices.cacheReadMicro ?? prices.inputMicro) +
    cacheWrite * (prices.cacheWriteMicro ?? prices.inputMicro) +
    count(usage.completionTokens) * prices.outputMicro;
  return ceilDiv(tokens, 1000n) + count(usage.images) * prices.imageNano;
}

/**
 * The prices a hold is computed with: before the call nobody knows which prompt tokens the upstream will
 * serve from or write to its cache, so every prompt token counts at the dearest of the three input prices.
 */
export function worstCasePrices(prices: Prices): Prices {
  let input = prices.inputMicro;
  for (const price of [prices.cacheReadMicro, prices.cacheWriteMicro]) if (price !== undefined && price > input) input = price;
  return { inputMicro: input, outputMicro: prices.outputMicro, imageNano: prices.imageNano };
}

/** The largest completion token count whose cost, on top of `fixedNano`, fits in `budgetNano`. */
export function affordableOutputTokens(prices: Prices, promptTokens: number, budgetNano: Nano): number {
  if (prices.outputMicro <= 0n) return Number.MAX_SAFE_INTEGER;
  // cost(p, c) <= budget  ⇔  p·in + c·out <= budget·1000 (ceil of an integer quotient)
  const room = budgetNano * 1000n - BigInt(promptTokens) * prices.inputMicro;
  if (room < 0n) return -1;
  const tokens = room / prices.outputMicro;
  return tokens > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(tokens);
}

/** Parses a USD amount (JSON number or decimal string) with at most `scale` decimals into integer units of 10^-scale USD. */
export function parseDecimal(value: unknown, scale: number): bigint | undefined {
  let text: string;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return undefined;
    text = /e/i.test(String(value)) ? value.toFixed(scale + 2).replace(/0+$/, '') : String(value);
  } else if (typeof value === 'string') {
    text = value.trim();
  } else {
    return undefined;
  }
  const match = /^(-?)(\d+)(?:\.(\d*))?$/.exec(text) ?? /^(-?)()\.(\d+)$/.exec(text);
  if (!match) return undefined;
  const [, sign, whole, fraction = ''] = match;
  const digits = fraction.replace(/0+$/, '');
  if (digits.length > scale) return undefined;
  const units = BigInt(whole || '0') * 10n ** BigInt(scale) + BigInt((digits || '0').padEnd(scale, '0'));
  return sign === '-' ? -units : units;
}

/** Integer units of 10^-scale → plain decimal string without trailing zeros ("-0.0000135", "1"). */
export function formatDecimal(units: bigint, scale: number): string {
  const negative = units < 0n;
  const abs = negative ? -units : units;
  const base = 10n ** BigInt(scale);
  const fraction = (abs % base).toString().padStart(scale, '0').replace(/0+$/, '');
  return `${negative ? '-' : ''}${abs / base}${fraction ? `.${fraction}` : ''}`;
}

export const formatUsd = (nano: Nano) => formatDecimal(nano, 9);
export const formatPricePerMillion = (micro: bigint) => formatDecimal(micro, 6);
/** For JSON number fields (`usage.cost`, model prices): the decimal string read back as a JS number. */
export const usdNumber = (nano: Nano) => Number(formatUsd(nano));
/** A price per 1M tokens (micro-USD) as USD for JSON (`input_price_per_1m`): micro-USD × 1000 = nano-USD. */
export const pricePerMillionUsd = (micro: bigint) => usdNumber(micro * 1000n);
