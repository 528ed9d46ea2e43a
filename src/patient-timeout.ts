/** A timer this late fired after the process was busy, not after the other side was silent that long. */
const BUSY_LATE_MS = 500;

/**
 * Calls `onSilence` when `timeoutMs` pass without `answered()`, not counting time this process was too busy to
 * read the answer. A plain timer gets that wrong: timers run before the socket reads of the same event-loop
 * turn, so after a busy spell longer than the timeout (a burst) it fires although the answer is already in the
 * socket (redis/ioredis#1613; BENCHMARKS.md, fifth round). Here the verdict waits for the turn's reads
 * (setImmediate), and a timer that fired late gives the other side its full time again. Returns the stop.
 */
export function patientTimeout(timeoutMs: number, answered: () => boolean, onSilence: () => void): () => void {
  let timer: NodeJS.Timeout;
  const arm = () => {
    const due = performance.now() + timeoutMs;
    timer = setTimeout(() => {
      const lateMs = performance.now() - due;
      setImmediate(() => {
        if (answered()) return;
        if (lateMs > BUSY_LATE_MS) arm();
        else onSilence();
      });
    }, timeoutMs);
  };
  arm();
  return () => clearTimeout(timer);
}
