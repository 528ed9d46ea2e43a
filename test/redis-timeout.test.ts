import { createServer, type Socket } from 'node:net';
import test from 'ava';
import { Redis } from 'ioredis';
import { createRedis } from '../src/redis/index.js';
import { REDIS_URL } from './helpers/env.js';

// The web's request-path connections give up on a command after `commandTimeout` without a reply, but not
// while the process itself was too busy to read the reply (a burst): src/redis/index.ts. Serial: the first
// test's busy loops would delay the second's timer.

const TIMEOUT_MS = 300;

/** Keeps the event loop busy, as a burst of requests does, for longer than the command timeout. */
function busyFor(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // busy
  }
}

/** Sends a command, stays busy past the timeout while Redis answers it, then says how the command ended. */
async function commandsDuringBusyLoop(redis: Redis, rounds: number): Promise<string[]> {
  await redis.ping();
  const outcomes: string[] = [];
  for (let i = 0; i < rounds; i++) {
    const reply = redis.get('eastx-test:nothing').then(
      () => 'answered',
      (err: Error) => err.message,
    );
    busyFor(TIMEOUT_MS * 2);
    outcomes.push(await reply);
  }
  return outcomes;
}

test.serial('a reply that came while the process was busy is not a timeout', async (t) => {
  const patient = createRedis(REDIS_URL, { commandTimeout: TIMEOUT_MS, enableAutoPipelining: false });
  // ioredis's own timer, for comparison: the same busy loop fails commands Redis answered
  const plain = new Redis(REDIS_URL, { commandTimeout: TIMEOUT_MS, enableAutoPipelining: false });
  try {
    t.deepEqual(await commandsDuringBusyLoop(patient, 4), Array(4).fill('answered'));
    t.true((await commandsDuringBusyLoop(plain, 4)).includes('Command timed out'), 'the scenario is the one ioredis gets wrong');
  } finally {
    patient.disconnect();
    plain.disconnect();
  }
});

test.serial('a Redis that accepts the connection and never answers still fails the command within the timeout', async (t) => {
  const sockets: Socket[] = [];
  const silent = createServer((socket) => sockets.push(socket)); // reads nothing, answers nothing
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const { port } = silent.address() as { port: number };
  const redis = createRedis(`redis://127.0.0.1:${port}`, { commandTimeout: TIMEOUT_MS, maxRetriesPerRequest: 2 });
  // ioredis's ready check (INFO) times out too and is reported as a connection error; the processes listen for those
  redis.on('error', () => undefined);
  try {
    const started = performance.now();
    const error = await t.throwsAsync(redis.get('anything'));
    const waited = performance.now() - started;
    t.is(error?.message, 'Command timed out');
    t.true(waited >= TIMEOUT_MS - 5 && waited < TIMEOUT_MS + 500, `failed after ${Math.round(waited)} ms`);
  } finally {
    redis.disconnect();
    for (const socket of sockets) socket.destroy();
    silent.close();
  }
});
