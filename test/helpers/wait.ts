import { setTimeout as sleep } from 'node:timers/promises';

/** Polls `probe` until `ok` holds of its value or `timeoutMs` passed; returns the last value either way. */
export async function until<T>(probe: () => Promise<T> | T, ok: (v: T) => boolean, timeoutMs = 30_000, pollMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (ok(value) || Date.now() > deadline) return value;
    await sleep(pollMs);
  }
}

/** `until` for a probe that answers whether it is done: true once it was, false if `timeoutMs` passed first. */
export const untilTrue = (probe: () => Promise<boolean> | boolean, timeoutMs?: number, pollMs?: number): Promise<boolean> =>
  until(probe, (done) => done, timeoutMs, pollMs);

/** `untilTrue` that fails its caller instead: throws "timed out waiting for <what>" if `timeoutMs` passed first. */
export async function untilTrueOrThrow(
  probe: () => Promise<boolean> | boolean,
  what: string,
  timeoutMs?: number,
  pollMs?: number,
): Promise<void> {
  if (!(await untilTrue(probe, timeoutMs, pollMs))) throw new Error(`timed out waiting for ${what}`);
}

/** The highest `sample()` read every 10 ms until `done` settles (e.g. a mock secret's in-flight calls). */
export async function mostUntil(sample: () => number, done: Promise<unknown>): Promise<number> {
  let settled = false;
  void done.finally(() => (settled = true));
  let most = 0;
  while (!settled) {
    most = Math.max(most, sample());
    await sleep(10);
  }
  return most;
}
