import { Buffer } from 'node:buffer';
import test from 'ava';
import { countTokens } from 'gpt-tokenizer';
import {
  countTextTokens,
  estimateChatPromptTokens,
  estimateEmbeddingTokens,
  IMAGE_PART_TOKENS,
  TokenCounter,
} from '../src/billing/estimate.js';

// The oracle: o200k over the whole text, special-token look-alikes as plain text (as the upstream sees them).
const exact = (text: string) => countTokens(text, { disallowedSpecial: new Set() });
const bytes = (text: string) => Buffer.byteLength(text);
const unlimited = () => new TokenCounter({ budgetMs: Number.POSITIVE_INFINITY });

function seeded(seed: number): () => number {
  let state = seed;
  return () => (state = (state * 1103515245 + 12345) % 2147483648) / 2147483648;
}

/** Text assembled from pieces that exercise every rule of o200k's pre-tokenizer. */
function randomText(random: () => number, length: number, atoms: readonly string[]): string {
  let text = '';
  while (text.length < length) text += atoms[Math.floor(random() * atoms.length)];
  return text;
}

const ATOMS = [
  'the',
  'Quick',
  'BROWN',
  'fox',
  'a',
  'I',
  "'s",
  "'LL",
  "'",
  "don't",
  '42',
  '7',
  '1234567',
  '½',
  '²',
  'Ⅻ',
  '字符',
  '한국어',
  'ไทย',
  'naïve',
  'e\u0301',
  '\u0301',
  'ʰ',
  '😀',
  '👍🏽',
  '𝐀',
  '𝟎',
  '<|endoftext|>',
  '<|im_start|>',
  '\r\n',
  '\r',
  '\n',
  ' ',
  '  ',
  '\t',
  '\u00a0',
  '\u3000',
  '\u2028',
  '/',
  '//',
  '!',
  '...',
  '—',
  '-',
  '$',
  '(',
  ')',
  '{',
  '"',
  ',',
  '.',
  '?',
  '_',
  '=',
  '\ud800',
];

const PROSE = `Holds are reserved before the job is enqueued. The worst case is input tokens × input price + max output × output price.
Concurrent requests can never together spend more than the balance — no overdraft, ever (SPEC §3, 2026-11-30).`;
const CODE = `export function sum(values: number[]): number {\n\tlet total = 0;\n\tfor (const v of values) total += v; // 1e3 × O(n)\n\treturn total;\n}\n`;
const CJK = '预估的提示词令牌数必须是上游计费的上界。検索結果は、次のとおりです。토큰 수를 추정합니다.';
const EMOJI = '👩‍👩‍👧‍👦 family, 🇯🇵 flag, 👍🏽 thumbs, 😀😃😄😁 faces';

test('ordinary texts are counted exactly', (t) => {
  for (const text of [PROSE, CODE, CJK, EMOJI, `${PROSE}\n\n${CODE}\n${CJK} ${EMOJI}`, PROSE.repeat(40), CODE.repeat(60)]) {
    t.is(countTextTokens(text), exact(text), text.slice(0, 40));
  }
});

test('cutting a text where o200k ends a piece anyway keeps the count exact (every boundary a cut)', (t) => {
  const random = seeded(7);
  for (let trial = 0; trial < 300; trial++) {
    const text = randomText(random, 120 + Math.floor(random() * 400), ATOMS);
    // batchChars 1 hands every stretch between two boundaries to the tokenizer on its own
    const counted = new TokenCounter({ budgetMs: Number.POSITIVE_INFINITY, batchChars: 1 }).count(text);
    t.true(counted >= exact(text), JSON.stringify(text));
    if (!/[^\p{L}\p{N}]{257}|[\p{L}\p{M}]{257}/u.test(text)) t.is(counted, exact(text), JSON.stringify(text));
  }
});

test('long unbroken runs are bounded by their bytes and stay above the exact count', (t) => {
  const runs = [
    'a'.repeat(20_000),
    'A'.repeat(5_000),
    '字'.repeat(5_000),
    ' '.repeat(5_000),
    '!'.repeat(5_000),
    '😀'.repeat(3_000),
    '\u0301'.repeat(5_000),
    'ʰ'.repeat(3_000),
    '\n'.repeat(5_000),
  ];
  for (const run of runs) {
    const counted = unlimited().count(run);
    t.true(counted >= exact(run), run.slice(0, 4));
    t.true(counted <= bytes(run), run.slice(0, 4));
  }
});

test('text around a long run is still counted exactly, the run by its bytes', (t) => {
  const before = `${PROSE}\nAll of this is counted exactly, and so is the end`;
  const run = 'x'.repeat(10_000);
  const text = `${before} ${run} ${CODE}`;
  const counted = unlimited().count(text);
  t.true(counted >= exact(text));
  // the run (with the space o200k glues to its front) by its bytes, the text on either side exactly
  t.is(counted, exact(before) + bytes(` ${run}`) + exact(` ${CODE}`));
});

test('random mixed texts of every kind: the count is never below o200k, never above the bytes', (t) => {
  const random = seeded(2026);
  for (let trial = 0; trial < 40; trial++) {
    const parts: string[] = [];
    while (parts.join('').length < 6_000) {
      const pick = random();
      if (pick < 0.6) parts.push(randomText(random, 50 + Math.floor(random() * 500), ATOMS));
      else if (pick < 0.8) parts.push(ATOMS[Math.floor(random() * ATOMS.length)].repeat(100 + Math.floor(random() * 600)));
      else parts.push([PROSE, CODE, CJK, EMOJI][Math.floor(random() * 4)]);
    }
    const text = parts.join('');
    const counted = unlimited().count(text);
    t.true(counted >= exact(text), `trial ${trial}`);
    t.true(counted <= bytes(text), `trial ${trial}`);
  }
});

test('once the time budget is spent, the rest is counted by its bytes', (t) => {
  const counter = new TokenCounter({ budgetMs: -1 });
  for (const text of [PROSE, CJK, EMOJI, 'a'.repeat(5_000)]) t.is(counter.count(text), bytes(text));
});

test('special-token look-alikes in user text are plain text, not an error', (t) => {
  const text = 'ignore this <|endoftext|> and <|im_start|>system';
  t.is(countTextTokens(text), exact(text));
  t.true(countTextTokens(text) > 5);
});

test('a chat estimate covers o200k plus the margin and framing, whatever the content', (t) => {
  const longRun = 'z'.repeat(30_000);
  const toolCalls = [{ id: 'call_1', type: 'function', function: { name: 'lookup', arguments: JSON.stringify({ q: CJK }) } }];
  const tools = [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: { q: { type: 'string' } } } } }];
  const audio = { type: 'input_audio', input_audio: { data: Buffer.alloc(3_000, 7).toString('base64'), format: 'wav' } };
  const messages = [
    { role: 'system', content: PROSE },
    {
      role: 'user',
      content: [{ type: 'text', text: CODE }, { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } }, audio],
    },
    { role: 'assistant', content: null, tool_calls: toolCalls },
    { role: 'tool', content: longRun, name: 'lookup' },
    { role: 'user', content: `${CJK}<|endoftext|>${EMOJI}` },
  ];
  const floor =
    exact(PROSE) +
    exact(CODE) +
    IMAGE_PART_TOKENS +
    exact(JSON.stringify(audio)) +
    exact(JSON.stringify(toolCalls)) +
    exact(longRun) +
    exact('lookup') +
    exact(`${CJK}<|endoftext|>${EMOJI}`) +
    exact(JSON.stringify(tools));
  const estimate = estimateChatPromptTokens({ messages, tools });
  t.true(estimate >= Math.ceil(floor * 1.1) + 16 + 8 * messages.length, `${estimate} < ${floor}`);
  // bounded too: nothing counted above its bytes (plus margin and framing)
  const ceiling = bytes(
    PROSE +
      CODE +
      JSON.stringify(audio) +
      JSON.stringify(toolCalls) +
      longRun +
      'lookup' +
      CJK +
      '<|endoftext|>' +
      EMOJI +
      JSON.stringify(tools),
  );
  t.true(estimate <= Math.ceil((ceiling + IMAGE_PART_TOKENS) * 1.1) + 16 + 8 * messages.length);
});

test('an embeddings estimate covers o200k for every input', (t) => {
  const inputs = [PROSE, 'a'.repeat(20_000), CJK, EMOJI];
  const floor = inputs.reduce((sum, text) => sum + exact(text), 0);
  t.true(estimateEmbeddingTokens(inputs) >= Math.ceil(floor * 1.1) + inputs.length);
  t.is(
    estimateEmbeddingTokens([
      [1, 2, 3],
      [4, 5],
    ]),
    Math.ceil(5 * 1.1) + 2,
  );
});
