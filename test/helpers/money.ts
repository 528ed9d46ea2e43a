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

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Chunk = any;

/** The JSON data events of an SSE body, without the final [DONE]. */
export function readSse(text: string): Chunk[] {
  return text
    .split('\n\n')
    .filter((block) => block.startsWith('data: ') && block !== 'data: [DONE]')
    .map((block) => JSON.parse(block.slice('data: '.length)));
}
