import test from 'ava';
import { scrub, shownFailure, UpstreamError } from '../src/upstream/errors.js';

// What clients and operators see of an upstream's failure (SPEC §2: the upstream's message, never its
// credentials), whatever an upstream writes.

const SECRET = 'sk-live-0123456789abcdefghijklmnop';

test('masked keys and pieces of the secret are redacted, words around them kept', (t) => {
  t.is(
    scrub('Incorrect API key provided: sk-live-****************mnop. See docs.', SECRET),
    'Incorrect API key provided: [redacted] See docs.',
  );
  t.is(scrub('bad key abc***wxyz here', SECRET), 'bad key [redacted] here');
  t.is(scrub(`echo ${SECRET}!`, SECRET), 'echo [redacted]!');
  t.is(scrub('a rating of *** stars', SECRET), 'a rating of *** stars', 'stars beside no letter or digit are no key');
});

test('a secret split, spread out, in its middle or encoded is still redacted', (t) => {
  const b64 = Buffer.from(SECRET).toString('base64');
  const bare = (text: string) => text.replace(/[^A-Za-z0-9]/g, '');
  const runs = [bare(SECRET), bare(b64)].flatMap((form) => Array.from({ length: form.length - 7 }, (_, i) => form.slice(i, i + 8)));
  const leaks = (shown: string) => runs.some((run) => bare(shown).includes(run));
  for (const form of [
    `${SECRET.slice(0, 10)}-${SECRET.slice(10)}`,
    `${SECRET.slice(0, 12)}\u200b${SECRET.slice(12)}`,
    SECRET.slice(8, 28),
    b64,
    encodeURIComponent(`key=${SECRET}`),
    `parts: ${SECRET.slice(0, 12)} ${SECRET.slice(12, 24)} ${SECRET.slice(24)}`,
  ]) {
    const shown = scrub(`the key ${form} was refused`, SECRET);
    t.true(shown.includes('[redacted]') && !leaks(shown), shown);
    t.true(shown.startsWith('the key ') && shown.endsWith(' was refused'), 'the words around it kept');
  }
  t.is(scrub('an ordinary message about rate limits', SECRET), 'an ordinary message about rate limits');
});

test('a huge upstream message is scrubbed in linear time and shown shortened', (t) => {
  // 16 MB: what one stream event may hold; the masked-key pattern once backtracked over runs of stars (quadratic)
  for (const text of ['*'.repeat(16_000_000), `${'x'.repeat(8_000_000)}****${'y'.repeat(8_000_000)}`]) {
    const shown = shownFailure(new UpstreamError('http', text, { status: 500 }), SECRET);
    t.true(shown.message.length <= 2001, `${shown.message.length} characters`);
    t.is(shown.status, 500);
  }
});

test('refused credentials are answered in the gateway’s own words', (t) => {
  const shown = shownFailure(
    new UpstreamError('http', `Incorrect API key provided: ${SECRET.slice(0, 8)}****mnop`, { status: 401 }),
    SECRET,
  );
  t.is(shown.message, "the upstream provider refused the gateway's credentials (HTTP 401)");
});
