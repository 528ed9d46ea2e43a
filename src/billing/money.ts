/**
 * Money in one place (SPEC §3). Amounts are bigint nano-USD (1e-9 USD); token prices are bigint
 * micro-USD per 1M tokens; image prices are bigint nano-USD per image. Nothing else multiplies prices.
 */
export type Nano = bigint;

export interface Prices {
  inputMicro: bigint;
  outputMicro: bigint;
  imageNano: bigint;
}

export interface Usage {
  promptTokens: number;
  completionTokens: number;
  images: number;
}

function ceilDiv(a: bigint, b: bigint): bigint {
  return a <= 0n ? 0n : (a + b - 1n) / b;
}

/** `ceil((prompt × in_micro + completion × out_micro) / 1000)` nano-USD, plus `images × price_per_image`. */
export function costNano(prices: Prices, usage: Usage): Nano {
  const tokens = BigInt(usage.promptTokens) * prices.inputMicro + BigInt(usage.completionTokens) * prices.outputMicro;
  return ceilDiv(tokens, 1000n) + BigInt(usage.images) * prices.imageNano;
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
