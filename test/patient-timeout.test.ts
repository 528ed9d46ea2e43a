import { createServer, type Socket } from 'node:net';
import test from 'ava';
import { Redis } from 'ioredis';
import type { PoolConnection } from 'mysql2';
import { createDb, poolOf } from '../src/db/index.js';
import { createRedis } from '../src/redis/index.js';
import { MYSQL_SERVER, REDIS_URL } from './helpers/env.js';

// The web's request-path Redis connections give up on a command after `commandTimeout` without a reply, and
// the processes' MariaDB pools on a query after `queryTimeoutMs`, but not while the process itself was too
// busy to read the reply (a burst): src/patient-timeout.ts. Serial: one test's busy loops would delay
// another's timers.

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

test.serial('a MariaDB answer that came while the process was busy is not a timeout (a settlement in a burst)', async (t) => {
  const db = createDb(`${MYSQL_SERVER}/mysql`, 1, { queryTimeoutMs: TIMEOUT_MS });
  const connection = await new Promise<PoolConnection>((resolve, reject) =>
    poolOf(db).getConnection((err, got) => (err ? reject(err) : resolve(got))),
  );
  try {
    // the pool's session settings go out first on a new connection, and mysql2 sends one command at a time
    await new Promise((resolve) => connection.query('SELECT 1', resolve));
    const outcomes: string[] = [];
    let plainTimerSawNoAnswer = 0;
    for (let i = 0; i < 4; i++) {
      let answered = false;
      const reply = new Promise<string>((resolve) =>
        connection.query('SELECT 1 AS one', (err) => {
          answered = true;
          resolve(err ? err.message : 'answered');
        }),
      );
      // a plain timer armed beside it fires before the turn's reads, with the answer still unread
      setTimeout(() => {
        if (!answered) plainTimerSawNoAnswer++;
      }, TIMEOUT_MS);
      // busy in the next task (mysql2 writes the query on the next tick), while MariaDB answers
      await new Promise<void>((resolve) =>
        setImmediate(() => {
          busyFor(TIMEOUT_MS * 2);
          resolve();
        }),
      );
      outcomes.push(await reply);
    }
    t.deepEqual(outcomes, Array(4).fill('answered'));
    t.is(plainTimerSawNoAnswer, 4, 'the scenario is the one a plain timer gets wrong');
  } finally {
    connection.release();
    // kysely ends the pool only if it ever ran a query itself
    await new Promise((resolve) => poolOf(db).end(resolve));
  }
});
