import { Agent, request } from 'node:http';
import test from 'ava';
import OpenAI, { APIError } from 'openai';
import { type MockBed, startMockBed } from './helpers/mock-bed.js';
import { until } from './helpers/wait.js';

// Web processes stopped (SIGTERM) with requests in flight. Web 0 serves the admin API and the checks; webs 1
// and 2 relay the requests and are the ones stopped.
let bed: MockBed;
test.before(async () => {
  bed = await startMockBed('webstop', { webs: 3, workers: 1 });
});
test.after.always(() => bed?.stop());

test.serial(
  'SIGTERM while a stream and a non-stream call outlast the drain time: both get the restart error, the stream billed for what it streamed, the call not at all',
  async (t) => {
    const streamed = await bed.channelWith({ chunkDelayMs: 1_000, reply: Array(120).fill('long').join(' ') });
    const slow = await bed.channelWith({ latencyMs: 60_000 });
    const stopping = bed.gateway.webs[1];
    const client = new OpenAI({ baseURL: `${bed.gateway.urls[1]}/v1`, apiKey: bed.apiKey, maxRetries: 0 });
    const messages = [{ role: 'user' as const, content: 'hi' }];

    const { data: stream, response } = await client.chat.completions
      .create({ model: streamed.model, messages, max_tokens: 250, stream: true })
      .withResponse();
    const streamId = response.headers.get('x-request-id')!;
    const chunks = stream[Symbol.asyncIterator]();
    let text = '';
    for (let i = 0; i < 2; i++) text += (await chunks.next()).value?.choices[0]?.delta.content ?? '';
    const call = client.chat.completions.create({ model: slow.model, messages, max_tokens: 250 }).then(
      () => undefined,
      (err: unknown) => err,
    );
    await until(
      () => bed.mock.stats(slow.secret).calls,
      (n) => n === 1,
    );

    const stoppedAt = Date.now();
    const exited = stopping.kill('SIGTERM');
    const streamError = await (async () => {
      try {
        for (let next = await chunks.next(); !next.done; next = await chunks.next()) text += next.value.choices[0]?.delta.content ?? '';
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    const callError = await call;
    await exited;
    const stoppedIn = Date.now() - stoppedAt;

    t.true(stoppedIn < 28_000, `the web exited ${stoppedIn} ms after SIGTERM`);
    t.is(stopping.child.exitCode, 0, 'it stopped cleanly, not at the deadline');
    t.true(text.includes('long'), 'the stream had started');
    for (const err of [streamError, callError]) {
      t.true(err instanceof APIError, `the SDK raised the gateway's error: ${String(err)}`);
      t.is((err as APIError).code, 'upstream_error');
      t.regex((err as APIError).message, /interrupted by a gateway restart/);
    }
    t.is((callError as APIError).status, 502, 'the non-stream call got its JSON error, which an SDK retries');
    t.is((callError as APIError).headers?.get('connection'), 'close', 'on a connection that closes after it');
    const callId = (callError as APIError).headers?.get('x-request-id');
    t.truthy(callId);

    // the worker cancels both jobs: what was streamed is billed once, the call is not billed, nothing stays held
    const streamRows = await until(
      () => bed.rowsFor(streamId),
      (rows) => rows.length > 0,
    );
    t.is(streamRows.length, 1, 'what was streamed is billed, once');
    t.true(Number(streamRows[0].amount_usd) < 0, 'a charge');
    t.is((await bed.rowsFor(callId!)).length, 0, 'the interrupted call costs nothing');
    t.is(await bed.heldOnceSettled(), '0');
    for (const { tokenId, secret } of [streamed, slow]) {
      t.is(
        await until(
          () => bed.pool.liveLeases(tokenId),
          (n) => n === 0,
        ),
        0,
      );
      t.is(bed.mock.stats(secret).calls, 1, 'nobody called the upstream again');
    }
  },
);

/** A POST on `agent`'s kept-alive connections: its status and Connection header, or the error it failed with. */
function post(agent: Agent, url: string, body: unknown) {
  return new Promise<{ status: number; connection: string | undefined } | Error>((resolve) => {
    const req = request(url, {
      method: 'POST',
      agent,
      headers: { authorization: `Bearer ${bed.apiKey}`, 'content-type': 'application/json' },
    });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }));
    });
    req.on('error', resolve);
    req.end(JSON.stringify(body));
  });
}

test.serial(
  'SIGTERM with a call and a not yet started stream in flight: both get their answers, their kept-alive connections close after them, and the web exits at once',
  async (t) => {
    const slow = await bed.channelWith({ latencyMs: 2_000 });
    const stopping = bed.gateway.webs[2];
    const url = `${bed.gateway.urls[2]}/v1/chat/completions`;
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const streamAgent = new Agent({ keepAlive: true, maxSockets: 1 });
    t.teardown(() => [agent, streamAgent].forEach((a) => a.destroy()));
    const body = { model: slow.model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 16 };

    const inFlight = post(agent, url, body);
    const streamInFlight = post(streamAgent, url, { ...body, stream: true });
    await until(
      () => bed.mock.stats(slow.secret).calls,
      (n) => n === 2,
    );
    const stoppedAt = Date.now();
    const exited = stopping.kill('SIGTERM');
    const answered = await inFlight;
    t.deepEqual(answered, { status: 200, connection: 'close' }, 'the call in flight is answered, and its connection closed');
    // its 200 goes out after SIGTERM, when the upstream's first chunk comes
    t.deepEqual(await streamInFlight, { status: 200, connection: 'close' }, 'the stream is answered to its end, and its connection closed');
    const next = await post(agent, url, body);
    t.true(next instanceof Error, `no request is served by the stopping process: ${JSON.stringify(next)}`);
    await exited;
    t.is(stopping.child.exitCode, 0);
    t.true(Date.now() - stoppedAt < 5_000, 'the web exits once nothing is open, not at its drain deadline');
    t.is(bed.mock.stats(slow.secret).calls, 2);
  },
);
