import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { LOG_FLUSH_MS } from '../src/log.js';
import { until } from './helpers/wait.js';

/** The write() system calls a process has made so far (`syscw` in /proc/<pid>/io). */
const writeCalls = (pid: number) => Number(/syscw:\s*(\d+)/.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1]);

// src/log.ts buffers stdout: a line goes out within LOG_FLUSH_MS, and a process with nothing to log writes nothing
test('a buffered log line reaches stdout within the flush interval, and an idle process makes no write calls', async (t) => {
  const child = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      "const { log } = await import('./dist/src/log.js'); log.warn({ probe: 1 }, 'hello'); setInterval(() => {}, 1000);",
    ],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, LOG_LEVEL: 'info' } },
  );
  t.teardown(() => child.kill('SIGKILL'));
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  const flushed = await until(
    () => out,
    (text) => text.includes('"msg":"hello"'),
    5_000,
    10,
  );
  t.true(flushed.includes('"msg":"hello"'), 'the line was flushed');

  await sleep(3 * LOG_FLUSH_MS);
  const before = writeCalls(child.pid!);
  await sleep(20 * LOG_FLUSH_MS);
  const idleWrites = writeCalls(child.pid!) - before;
  // sonic-boom's periodicFlush alone would make a zero-length write every LOG_FLUSH_MS (20 here)
  t.true(idleWrites <= 2, `${idleWrites} write calls in ${20 * LOG_FLUSH_MS} ms of idling`);
});
