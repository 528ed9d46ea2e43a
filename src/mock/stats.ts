/** Per-secret concurrency counters and the request log of the mock upstream. */

export interface SecretStats {
  inFlight: number;
  maxInFlight: number;
  calls: number;
  closedEarly: number;
  lastClosedAt?: number;
}

export interface RecordedRequest {
  /** Date.now() when the request arrived */
  at: number;
  method: string;
  /** pathname, without the query string */
  path: string;
  /** lower-case header names; repeated headers joined with ", " */
  headers: Record<string, string>;
  /** parsed JSON body, or undefined (no body / not JSON) */
  body: unknown;
  /** the credential the caller sent ("" if none) */
  secret: string;
}

/** A unit of in-flight work held by a secret. `end` is idempotent. */
export interface Slot {
  end(closedEarly: boolean): void;
}

function emptyStats(): SecretStats {
  return { inFlight: 0, maxInFlight: 0, calls: 0, closedEarly: 0 };
}

export class StatsTracker {
  #bySecret = new Map<string, SecretStats>();
  /** bumped by reset(); slots opened before a reset no longer touch the fresh counters */
  #generation = 0;

  begin(secret: string): Slot {
    const generation = this.#generation;
    const stats = this.#entry(secret);
    stats.calls += 1;
    stats.inFlight += 1;
    stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
    let ended = false;
    return {
      end: (closedEarly: boolean) => {
        if (ended || generation !== this.#generation) return;
        ended = true;
        stats.inFlight -= 1;
        if (closedEarly) {
          stats.closedEarly += 1;
          stats.lastClosedAt = Date.now();
        }
      },
    };
  }

  get(secret: string): SecretStats {
    return { ...(this.#bySecret.get(secret) ?? emptyStats()) };
  }

  all(): Record<string, SecretStats> {
    return Object.fromEntries([...this.#bySecret].map(([secret, stats]) => [secret, { ...stats }]));
  }

  reset(): void {
    this.#generation += 1;
    this.#bySecret.clear();
  }

  #entry(secret: string): SecretStats {
    let stats = this.#bySecret.get(secret);
    if (!stats) {
      stats = emptyStats();
      this.#bySecret.set(secret, stats);
    }
    return stats;
  }
}

interface Waiter {
  count: number;
  resolve: () => void;
}

export class RequestLog {
  readonly requests: RecordedRequest[] = [];
  #waiters = new Set<Waiter>();

  add(request: RecordedRequest): void {
    this.requests.push(request);
    for (const waiter of this.#waiters) {
      if (this.requests.length >= waiter.count) {
        this.#waiters.delete(waiter);
        waiter.resolve();
      }
    }
  }

  /** Empties the log in place (the array identity is kept, so `mock.requests` stays valid). */
  clear(): void {
    this.requests.length = 0;
  }

  waitFor(count: number, timeoutMs: number): Promise<void> {
    if (this.requests.length >= count) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(`mock upstream: expected ${count} requests within ${timeoutMs}ms, got ${this.requests.length}`));
      }, timeoutMs);
      const waiter: Waiter = {
        count,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      this.#waiters.add(waiter);
    });
  }
}
