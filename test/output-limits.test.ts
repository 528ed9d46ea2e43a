import test from 'ava';
import { chatRequest } from '../src/upstream/providers/openai/request.js';
import { CHAT_MODELS, type ClientBed, startClientBed } from './helpers/clients.js';

// The output limit a request reaches its upstream with (SPEC §3: the hold's max output is sent upstream): a
// client limit above the model's max_output_tokens is lowered to it (Claude Code asks 32,000 of every model),
// thinking budgets follow, and OpenAI's reasoning models (by name) get it as max_completion_tokens.

let bed: ClientBed;
const MODEL_MAX = 4096; // both chat models of the client bed
const SMALL = 'small-thinker';

test.before(async () => {
  bed = await startClientBed('output_limits');
  const channels = (await bed.admin.call<{ data: Array<{ id: number; type: string }> }>('GET', '/admin/api/channels')).data;
  const anthropic = channels.find((c) => c.type === 'anthropic')!;
  await bed.admin.model(SMALL, {
    channel_id: anthropic.id,
    upstream_model: 'claude-small',
    input_price_per_1m: 1,
    output_price_per_1m: 5,
    max_output_tokens: 1000,
  });
});

test.after.always(async () => {
  await bed?.stop();
});

/** Sends `body` to `path` and returns the answer's status and the body the upstream received for it. */
async function sent(
  path: string,
  body: Record<string, unknown>,
): Promise<{ status: number; text: string; upstream?: Record<string, unknown> }> {
  const before = bed.mock.requests.length;
  const response = await fetch(`${bed.baseURL}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${bed.apiKey}`, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  const upstream = bed.mock.requests.slice(before).find((r) => r.method === 'POST')?.body as Record<string, unknown> | undefined;
  return { status: response.status, text, upstream };
}

const ask = [{ role: 'user', content: 'hello' }];
// serial: each test reads the upstream's body from the mock's log, which every test of this file shares

for (const [channel, model] of Object.entries(CHAT_MODELS)) {
  test.serial(
    `${channel} channel: a limit above the model's max_output_tokens reaches the upstream lowered to it, on every wire`,
    async (t) => {
      const chat = await sent('/chat/completions', { model, messages: ask, max_tokens: 100_000 });
      t.is(chat.status, 200, chat.text);
      const chatLimit = chat.upstream?.max_tokens ?? chat.upstream?.max_completion_tokens;
      t.is(chatLimit, MODEL_MAX);
      const completion = await sent('/chat/completions', { model, messages: ask, max_completion_tokens: 100_000 });
      t.is(completion.status, 200, completion.text);
      t.is(completion.upstream?.max_completion_tokens ?? completion.upstream?.max_tokens, MODEL_MAX);
      const messages = await sent('/messages', { model, max_tokens: 32_000, messages: ask });
      t.is(messages.status, 200, messages.text);
      t.is(messages.upstream?.max_tokens ?? messages.upstream?.max_completion_tokens, MODEL_MAX);
      const responses = await sent('/responses', { model, input: 'hello', max_output_tokens: 100_000, store: false });
      t.is(responses.status, 200, responses.text);
      t.is(responses.upstream?.max_tokens ?? responses.upstream?.max_completion_tokens, MODEL_MAX);
      const both = await sent('/chat/completions', { model, messages: ask, max_tokens: 100_000, max_completion_tokens: 10 });
      t.is(both.status, 200, both.text);
      for (const field of ['max_tokens', 'max_completion_tokens']) {
        if (both.upstream && field in both.upstream) t.is(both.upstream[field], 10, `${field}: the smaller limit, as held, in both fields`);
      }
      const within = await sent('/chat/completions', { model, messages: ask, max_tokens: 50 });
      t.is(within.upstream?.max_tokens ?? within.upstream?.max_completion_tokens, 50, 'a limit within the model is kept');
    },
  );
}

test.serial(
  'Claude Code thinking: an Anthropic upstream gets the budget below the lowered max_tokens; a translation keeps its effort',
  async (t) => {
    const thinking = { type: 'enabled', budget_tokens: 10_000 };
    const passthrough = await sent('/messages', { model: CHAT_MODELS.anthropic, max_tokens: 32_000, thinking, messages: ask });
    t.is(passthrough.status, 200, passthrough.text);
    t.like(passthrough.upstream, { max_tokens: MODEL_MAX, thinking: { type: 'enabled', budget_tokens: MODEL_MAX - 1 } });
    const kept = await sent('/messages', {
      model: CHAT_MODELS.anthropic,
      max_tokens: 3000,
      thinking: { type: 'enabled', budget_tokens: 2000 },
      messages: ask,
    });
    t.like(kept.upstream, { max_tokens: 3000, thinking: { budget_tokens: 2000 } }, 'a request within the model is left alone');

    const translated = await sent('/messages', { model: CHAT_MODELS.openai, max_tokens: 32_000, thinking, messages: ask });
    t.is(translated.status, 200, translated.text);
    t.like(
      translated.upstream,
      { max_tokens: MODEL_MAX, reasoning_effort: 'medium' },
      'max_tokens kept on gpt-4o-mini; the effort of the 10,000 asked',
    );

    const small = await sent('/messages', { model: SMALL, max_tokens: 32_000, thinking, messages: ask });
    t.is(small.status, 200, small.text);
    t.like(
      small.upstream,
      { max_tokens: 1000, thinking: { budget_tokens: 999 } },
      'lowered with max_tokens, even below the 1,024 Anthropic asks at least (its refusal then reaches the client)',
    );
  },
);

test("OpenAI-type upstreams: OpenAI's reasoning models get the limit as max_completion_tokens, other models max_tokens", (t) => {
  const base = { messages: ask, max_tokens: 500 };
  for (const body of [
    { ...base, model: 'gpt-4o-mini' },
    { ...base, model: 'deepseek-reasoner', reasoning_effort: 'high' },
  ]) {
    t.like(chatRequest(body, false), { max_tokens: 500 }, body.model);
    t.false('max_completion_tokens' in chatRequest(body, false), body.model);
  }
  for (const body of [
    { ...base, model: 'o1', reasoning_effort: 'high' },
    { ...base, model: 'o3-mini' },
    { ...base, model: 'gpt-5' },
    { ...base, model: 'openai/gpt-5-mini' },
  ]) {
    const upstream = chatRequest(body, true);
    t.is(upstream.max_completion_tokens, 500, body.model);
    t.false('max_tokens' in upstream, body.model);
  }
  t.like(chatRequest({ ...base, model: 'o4-mini', max_completion_tokens: 300 }, false), { max_completion_tokens: 300 });
  t.like(chatRequest({ messages: ask, model: 'gpt-5' }, false), { stream: false }, 'no limit, nothing added');
});
