/** Test-side money arithmetic, written independently of src/billing/money.ts so each checks the other. */
export function nano(usd: string | number): bigint {
  const text = typeof usd === 'number' ? usd.toFixed(9) : usd;
  const [whole, fraction = ''] = text.replace('-', '').split('.');
  const value = BigInt(whole) * 1_000_000_000n + BigInt((fraction + '000000000').slice(0, 9));
  return text.startsWith('-') ? -value : value;
}

/** SPEC §3: ceil((prompt × in_micro + completion × out_micro) / 1000) nano-USD, prices in USD per 1M tokens. */
export function costOf(prices: { input: number; output: number }, prompt: number, completion: number): bigint {
  const micro = (usd: number) => BigInt(Math.round(usd * 1_000_000));
  const total = BigInt(prompt) * micro(prices.input) + BigInt(completion) * micro(prices.output);
  return (total + 999n) / 1000n;
}

/**
 * SPEC §3 with prompt caching: cached prompt tokens at the cache-read price, cache writes at the cache-write
 * price (both default to the input price), the rest of the prompt at the input price, output at the output
 * price; all summed in micro-USD × tokens, then rounded up once to nano-USD.
 */
export function costWithCache(
  prices: { input: number; output: number; cacheRead?: number; cacheWrite?: number },
  tokens: { prompt: number; completion: number; cached?: number; cacheWrite?: number },
): bigint {
  const micro = (usd: number) => BigInt(Math.round(usd * 1_000_000));
  const cached = BigInt(tokens.cached ?? 0);
  const written = BigInt(tokens.cacheWrite ?? 0);
  const plain = BigInt(tokens.prompt) - cached - written;
  const total =
    plain * micro(prices.input) +
    cached * micro(prices.cacheRead ?? prices.input) +
    written * micro(prices.cacheWrite ?? prices.input) +
    BigInt(tokens.completion) * micro(prices.output);
  return (total + 999n) / 1000n;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Chunk = any;

/** The JSON data events of an SSE body, without the final [DONE]. */
export function readSse(text: string): Chunk[] {
  return text
    .split('\n\n')
    .filter((block) => block.startsWith('data: ') && block !== 'data: [DONE]')
    .map((block) => JSON.parse(block.slice('data: '.length)));
}
