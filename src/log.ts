import { pino } from 'pino';

/** A log line reaches stdout at most this long after it was logged (sooner once 4 KB are waiting). */
export const LOG_FLUSH_MS = 100;

/**
 * stdout, written in blocks of 4 KB (or what came in the last LOG_FLUSH_MS, and on exit) instead of one
 * write per line: the per-line write of the access log was 4–9 % of a web process's CPU in the benchmark
 * (BENCHMARKS.md). A process killed with SIGKILL may lose its last LOG_FLUSH_MS of log lines.
 */
const destination = pino.destination({ dest: 1, sync: true, minLength: 4096 });
process.on('exit', () => destination.flushSync());

/**
 * Flushed only when something was logged since: sonic-boom's own `periodicFlush` makes a zero-length
 * write() when there is nothing to flush, ten system calls a second in every idle process.
 */
let loggedSinceFlush = false;
setInterval(() => {
  if (!loggedSinceFlush) return;
  loggedSinceFlush = false;
  destination.flush();
}, LOG_FLUSH_MS).unref();

/** JSON logs. Secrets and prompt text are never passed to the logger; redact catches headers that slip in. */
export const log = pino(
  {
    level: process.env.LOG_LEVEL || (process.env.NODE_ENV === 'test' ? 'warn' : 'info'),
    base: { pid: process.pid, role: process.env.EASTX_ROLE },
    redact: ['authorization', 'headers.authorization', 'headers["x-api-key"]', 'secret', 'key', 'password'],
    hooks: {
      streamWrite: (line) => {
        loggedSinceFlush = true;
        return line;
      },
    },
  },
  destination,
);
