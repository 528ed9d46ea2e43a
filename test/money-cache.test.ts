import test from 'ava';
import fc from 'fast-check';
import { costNano, worstCasePrices } from '../src/billing/money.js';
import { costWithCache } from './helpers/money.js';

// src/billing/money.ts (bigint micro-USD) against the test-side oracle (USD numbers), written apart.

const usd = fc.integer({ min: 0, max: 100_000_000 }).map((micro) => micro / 1_000_000); // ≤ $100 per 1M, 6 decimals
const tokens = fc.integer({ min: 0, max: 2_000_000 });
const micro = (price: number) => BigInt(Math.round(price * 1_000_000));

test('costNano = the oracle for every split of the prompt into plain, cached and cache-write tokens', (t) => {
  fc.assert(
    fc.property(
      usd,
      usd,
      fc.option(usd, { nil: undefined }),
      fc.option(usd, { nil: undefined }),
      tokens,
      tokens,
      tokens,
      tokens,
      (input, output, cacheRead, cacheWrite, plain, cached, written, completion) => {
        const prices = {
          inputMicro: micro(input),
          outputMicro: micro(output),
          imageNano: 0n,
          ...(cacheRead !== undefined && { cacheReadMicro: micro(cacheRead) }),
          ...(cacheWrite !== undefined && { cacheWriteMicro: micro(cacheWrite) }),
        };
        const prompt = plain + cached + written;
        const usage = { promptTokens: prompt, completionTokens: completion, images: 0, cachedTokens: cached, cacheWriteTokens: written };
        return (
          costNano(prices, usage) ===
          costWithCache({ input, output, cacheRead, cacheWrite }, { prompt, completion, cached, cacheWrite: written })
        );
      },
    ),
  );
  t.pass();
});

test('one rounding: fractions of a nano-USD from each part add up before rounding', (t) => {
  // 1 plain token at $0.000001/1M (1 micro), 1 cached at 1 micro, 1 written at 1 micro: 3/1000 nano → 1 nano, not 3
  const prices = { inputMicro: 1n, outputMicro: 1n, imageNano: 0n, cacheReadMicro: 1n, cacheWriteMicro: 1n };
  t.is(costNano(prices, { promptTokens: 3, completionTokens: 0, images: 0, cachedTokens: 1, cacheWriteTokens: 1 }), 1n);
  t.is(costNano(prices, { promptTokens: 0, completionTokens: 0, images: 0 }), 0n);
});

test('an upstream reporting more cached tokens than prompt tokens is never billed negative plain tokens', (t) => {
  const prices = { inputMicro: 3_000_000n, outputMicro: 0n, imageNano: 0n, cacheReadMicro: 300_000n };
  t.is(costNano(prices, { promptTokens: 10, completionTokens: 0, images: 0, cachedTokens: 20 }), 6000n);
});

test('the hold prices cover every way the prompt may turn out cached or written', (t) => {
  fc.assert(
    fc.property(usd, usd, usd, usd, tokens, tokens, tokens, tokens, (input, output, cacheRead, cacheWrite, plain, cached, written, out) => {
      const prices = {
        inputMicro: micro(input),
        outputMicro: micro(output),
        imageNano: 0n,
        cacheReadMicro: micro(cacheRead),
        cacheWriteMicro: micro(cacheWrite),
      };
      const prompt = plain + cached + written;
      const worst = costNano(worstCasePrices(prices), { promptTokens: prompt, completionTokens: out, images: 0 });
      return (
        worst >=
        costNano(prices, { promptTokens: prompt, completionTokens: out, images: 0, cachedTokens: cached, cacheWriteTokens: written })
      );
    }),
  );
  t.pass();
});
