import { once } from 'node:events';
import { connect } from 'node:net';
import { Readable } from 'node:stream';
import test from 'ava';
import type { Context } from 'koa';
import { MAX_JSON_DEPTH, pathDeeperThan, readJson } from '../src/http/body.js';
import { ApiError } from '../src/http/errors.js';
import { type Bed, startBed } from './helpers/bed.js';
import { newCustomer } from './helpers/customer.js';

const nestedObjects = (levels: number, key = 'a') => `${`{"${key}":`.repeat(levels)}1${'}'.repeat(levels)}`;
const nestedArrays = (levels: number) => `${'['.repeat(levels)}${']'.repeat(levels)}`;

/** A Koa context carrying just what readJson uses. */
const contextWith = (text: string) => ({ req: Readable.from([Buffer.from(text)]), get: () => '', state: {} }) as unknown as Context;

test('64 levels of nesting are fine, 65 are not (arrays, objects, and both)', (t) => {
  t.is(pathDeeperThan(nestedArrays(64), 64), null);
  t.is(pathDeeperThan(nestedObjects(64), 64), null);
  t.is(pathDeeperThan(`{"x":[${nestedObjects(62)}]}`, 64), null);
  t.is(pathDeeperThan(nestedArrays(65), 64), '0.0.0.0.0.0.0.0…');
  t.is(pathDeeperThan(nestedObjects(65), 64), 'a.a.a.a.a.a.a.a…');
  t.is(pathDeeperThan(`{"x":[${nestedObjects(63)}]}`, 64), 'x.0.a.a.a.a.a.a…');
});

test('the path names the field where the nesting goes too deep: keys, array indices, shortened', (t) => {
  const body = `{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"user","content":"x","extra":${nestedObjects(100)}}]}`;
  t.is(pathDeeperThan(body, 64), 'messages.1.extra.a.a.a.a.a…');
  t.is(pathDeeperThan('{"a":[1,2,{"b":[[0,{"c":[[[1]]]}]]}]}', 4), 'a.2.b.0');
  t.is(pathDeeperThan('{"a":[1,2,{"b":[[0,{"c":[[[1]]]}]]}]}', 9), null);
  const longKey = 'k'.repeat(1_000);
  t.is(pathDeeperThan(`{"${longKey}":{"x\\"y":[[[]]]}}`, 3), `${'k'.repeat(32)}….x"y.0`);
});

test('brackets, quotes and backslashes inside strings are text, not structure', (t) => {
  const strings = ['[[[[{{{{'.repeat(50), '\\"[[[[\\"'.repeat(50), '\\\\', 'a\\\\', '\\\\\\"{'];
  for (const s of strings) {
    const json = `{"k":"${s}","${s}":[1,{"v":"${s}"}]}`;
    t.notThrows(() => JSON.parse(json), json);
    t.is(pathDeeperThan(json, 3), null, json);
  }
  t.is(pathDeeperThan('{"s":"a\\\\"}', 1), null);
  t.is(pathDeeperThan('{"s":"a\\\\","t":[[1]]}', 2), 't.0');
});

test('100,000 and 10,000,000 levels: no recursion, the first 64 are enough to answer', (t) => {
  t.is(pathDeeperThan(nestedObjects(100_000), MAX_JSON_DEPTH), 'a.a.a.a.a.a.a.a…');
  t.is(pathDeeperThan(nestedArrays(10_000_000), MAX_JSON_DEPTH), '0.0.0.0.0.0.0.0…');
});

test('readJson refuses a deep body with 400 bad_request naming the field, before parsing it', async (t) => {
  const body = `{"model":"m","messages":[{"role":"user","content":"hi"}],"extra":${nestedObjects(100_000)}}`;
  const ctx = contextWith(body);
  const error = await t.throwsAsync(readJson(ctx, 1 << 24), { instanceOf: ApiError });
  t.is(error.status, 400);
  t.like(error.toJSON().error, {
    code: 'bad_request',
    param: 'extra.a.a.a.a.a.a.a…',
    message: 'extra.a.a.a.a.a.a.a…: nested deeper than 64 levels',
  });
  t.false('jsonBody' in ctx.state);
  t.deepEqual(await readJson(contextWith(`{"x":${nestedObjects(63)}}`), 1 << 24), { x: JSON.parse(nestedObjects(63)) });
});

let bed: Bed;

test.after.always(() => bed?.stop());

test.serial('through the gateway: a deep unknown field gets its 400 and costs nothing; 64 levels pass', async (t) => {
  bed = await startBed('body');
  const { admin, mock, url } = bed;
  const channel = await admin.channel('mock-openai', 'openai', `${mock.url}/v1`);
  await admin.token(channel.id, 'tok-body', 4);
  await admin.model('test/chat', { channel_id: channel.id, upstream_model: 'mock-gpt', input_price_per_1m: 1, output_price_per_1m: 1 });
  const { userId, apiKey } = await newCustomer(admin, 'body@example.com', '5');
  const post = (body: string) =>
    fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body,
    });
  const chat = (extra: string) => `{"model":"test/chat","messages":[{"role":"user","content":"ping"}],"max_tokens":16,"extra":${extra}}`;

  const balance = (await admin.getUser(userId)).balance_usd;
  const refused = await post(chat(nestedObjects(100_000)));
  t.is(refused.status, 400);
  const { error } = (await refused.json()) as { error: Record<string, unknown> };
  t.like(error, {
    code: 'bad_request',
    type: 'invalid_request_error',
    param: 'extra.a.a.a.a.a.a.a…',
    message: 'extra.a.a.a.a.a.a.a…: nested deeper than 64 levels',
  });
  t.is(mock.requests.length, 0);
  t.is((await admin.getUser(userId)).balance_usd, balance);

  // the body object is level 1, so `extra` may hold 63 levels
  const accepted = await post(chat(nestedObjects(63)));
  t.is(accepted.status, 200);
  t.is(mock.requests.length, 1);
  t.is(await post(chat(nestedObjects(64))).then((r) => r.status), 400);
});

/** Sends raw bytes on a fresh connection and reads until the server closes it. */
async function rawExchange(url: string, request: string): Promise<string> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  let answer = '';
  socket.on('data', (chunk) => (answer += chunk));
  await once(socket, 'connect');
  socket.write(request);
  await once(socket, 'close');
  return answer;
}

test("requests Node's HTTP parser refuses get the SPEC §2 JSON error with an x-request-id, not a bare status line", async (t) => {
  const cases: [string, string, number, string][] = [
    ['a vertical tab in a header', 'x-api-key: sk-eastx-abc\x0b\r\n', 400, 'bad_request'],
    ['headers past 16 KB', `x-padding: ${'p'.repeat(20_000)}\r\n`, 413, 'request_too_large'],
  ];
  for (const [label, header, status, code] of cases) {
    const answer = await rawExchange(bed.url, `POST /v1/messages HTTP/1.1\r\nhost: x\r\n${header}content-length: 2\r\n\r\n{}`);
    const [head, body] = answer.split('\r\n\r\n');
    t.regex(head, new RegExp(`^HTTP/1.1 ${status} `), label);
    t.regex(head, /\r\ncontent-type: application\/json/i, label);
    t.regex(head, /\r\nx-request-id: req_[0-9a-f]{32}\r\n/i, label);
    const { error } = JSON.parse(body) as { error: { code: string; type: string; param: null; message: string } };
    t.like(error, { code, type: 'invalid_request_error', param: null }, label);
  }
  t.is((await fetch(`${bed.url}/healthz`)).status, 200, 'the web process serves on');
});
