import test from 'ava';
import { RelayHub, RelayStream, SILENCE_CHECK_MS } from '../src/queue/web-relay.js';
import { createRedis, RedisKeys } from '../src/redis/index.js';
import { REDIS_URL } from './helpers/env.js';

const chunk = (seq: number) => ({ id: 'req_x', seq, t: 'chunk' as const, chunk: { n: seq } });

test('a heartbeat wakes nobody; it only moves the time the job was last heard from', async (t) => {
  const stream = new RelayStream();
  let woke = false;
  const waiting = stream.next(60_000).then((frame) => {
    woke = true;
    return frame;
  });
  const before = stream.heardAt;
  await new Promise((resolve) => setTimeout(resolve, 5));
  stream.heartbeat();
  await new Promise((resolve) => setImmediate(resolve));
  t.false(woke, 'a held stream is not woken per heartbeat');
  t.true(stream.heardAt > before);
  stream.push(chunk(0));
  t.deepEqual(await waiting, chunk(0), 'a frame wakes it');
});

/** Whether `act` woke a pending `next` with nothing (a poke); if not, a frame ends the wait. */
async function pokedBy(stream: RelayStream, act: () => void): Promise<boolean> {
  let result: unknown = 'pending';
  const waiting = stream.next(60_000).then((frame) => {
    result = frame;
  });
  act();
  await new Promise((resolve) => setImmediate(resolve));
  if (result === undefined) return true;
  stream.push(chunk(0));
  await waiting;
  return false;
}

test('the watchdog pokes a stream silent for SILENCE_CHECK_MS, once per window, and none heard from', async (t) => {
  const stream = new RelayStream();
  let heard = stream.heardAt;
  t.false(await pokedBy(stream, () => stream.pokeIfSilent(heard + SILENCE_CHECK_MS - 1)), 'heard from within the window');
  heard = stream.heardAt;
  t.true(await pokedBy(stream, () => stream.pokeIfSilent(heard + SILENCE_CHECK_MS)), 'silent for the window');
  t.false(await pokedBy(stream, () => stream.pokeIfSilent(heard + SILENCE_CHECK_MS + 500)), 'not twice in one window');
  const again = stream.heardAt + 2 * SILENCE_CHECK_MS;
  t.true(await pokedBy(stream, () => stream.pokeIfSilent(again)), 'again after another silent window');
});

test('interrupt (the web process stopping) wakes a pending wait once; frames that came before it are still read first', async (t) => {
  const stream = new RelayStream();
  t.true(await pokedBy(stream, () => stream.interrupt()), 'a pending wait is woken with nothing');
  t.true(stream.isInterrupted);

  const buffered = new RelayStream();
  buffered.push(chunk(0));
  buffered.interrupt();
  t.deepEqual(await buffered.next(60_000), chunk(0), 'a frame already there comes first');
  t.is(await buffered.next(60_000), undefined, 'then the interrupt answers at once');
  t.false(await pokedBy(buffered, () => undefined), 'once: a later wait (for a charged answer) waits for its frame');
});

test('a stopping hub interrupts every open request and any request opened after it', async (t) => {
  const redis = createRedis(REDIS_URL, { lazyConnect: true }); // opening and interrupting send no command
  t.teardown(() => redis.disconnect());
  const hub = new RelayHub(redis, redis, new RedisKeys('eastx-test-relay'), 'web-1');
  const open = hub.open('req_open');
  hub.interruptAll();
  t.true(open.isInterrupted);
  const late = hub.open('req_late');
  t.true(late.isInterrupted);
  t.is(await late.next(60_000), undefined, 'it answers at once');
  t.false(new RelayHub(redis, redis, new RedisKeys('eastx-test-relay'), 'web-2').open('req_other').isInterrupted);
});
