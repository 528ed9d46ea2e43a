import test from 'ava';
import { ApiError } from '../src/http/errors.js';
import type { AppContext } from '../src/http/state.js';
import { ROUTES } from '../src/routes.js';

// SPEC §1: every handler refuses (401) when no authenticated principal is attached, whatever the routing did.
// Each customer route's handler (the last middleware of its chain) is called with what admission would have
// left on the context, but no principal, or only the guard's unchecked claim of a key.
const admittedState = {
  requestId: 'req_failclosed',
  body: { model: 'm', messages: [{ role: 'user', content: 'hi' }] },
  model: { id: 'm', upstreamModel: 'up', modality: 'chat', routes: [] },
  channel: { id: 1, type: 'openai' }, // count_tokens answers an OpenAI-type channel itself
  routes: [{ channelId: 1, upstreamModel: 'up', priority: 0, weight: 1 }],
  reservation: { holdNano: 0n },
};
const claim = { kind: 'customer-claim', key: { id: 1, userId: 1 }, keyHash: 'h', keyVersion: '', catalogVersion: '' };

for (const route of ROUTES.filter((r) => r.guard === 'customer')) {
  for (const [label, principal] of [
    ['no principal', undefined],
    ['an unchecked claim', claim],
  ] as const) {
    test(`${route.method} ${route.path}: its handler answers 401 with ${label}`, async (t) => {
      const chain = Array.isArray(route.handle) ? route.handle : [route.handle];
      const handler = chain[chain.length - 1];
      const ctx = { state: { ...admittedState, principal }, params: { id: 'x' }, set() {}, get: () => '' } as unknown as AppContext;
      const error = await t.throwsAsync(async () => handler(ctx, async () => undefined));
      t.true(error instanceof ApiError && error.status === 401, `${error?.name}: ${error?.message}`);
    });
  }
}
