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
