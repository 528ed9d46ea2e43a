import { type Db, retryOnDeadlock, runScript } from './index.js';

/**
 * Coalesces concurrent calls into batches: the first call flushes at once; calls that arrive while a flush
 * is running wait and go together in the next one. So an idle process pays one round trip per call, and a
 * busy one pays one round trip (and one commit) per batch instead of per call.
 */
export class MicroBatcher<I, R> {
  private waiting: Array<{ item: I; resolve: (result: R) => void; reject: (err: unknown) => void }> = [];
  private flushing = false;

  constructor(
    private readonly flush: (items: I[]) => Promise<R[]>,
    private readonly maxBatch = 100,
  ) {}

  submit(item: I): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      if (!this.flushing) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.flushing = true;
    while (this.waiting.length > 0) {
      const batch = this.waiting.splice(0, this.maxBatch);
      try {
        const results = await this.flush(batch.map((b) => b.item));
        batch.forEach((b, i) => b.resolve(results[i]));
      } catch (err) {
        batch.forEach((b) => b.reject(err));
      }
    }
    this.flushing = false;
  }
}

/** One batcher per owner object (e.g. per database handle), created on first use. */
export function batcherPer<O extends object, I, R>(create: (owner: O) => MicroBatcher<I, R>): (owner: O) => MicroBatcher<I, R> {
  const batchers = new WeakMap<O, MicroBatcher<I, R>>();
  return (owner) => {
    let batcher = batchers.get(owner);
    if (!batcher) {
      batcher = create(owner);
      batchers.set(owner, batcher);
    }
    return batcher;
  };
}

/** Items in lock order (by account), remembering where each came from, so batches lock rows in one order. */
function inLockOrder<I>(items: I[], accountOf: (item: I) => number): Array<{ item: I; index: number }> {
  return items.map((item, index) => ({ item, index })).sort((a, b) => accountOf(a.item) - accountOf(b.item) || a.index - b.index);
}

export interface ItemScript<I, R> {
  /** The statements of one item, with `?` placeholders; repeated once per item inside one transaction. */
  statements: string;
  /** How many results those statements produce. */
  resultsPerItem: number;
  accountOf: (item: I) => number;
  paramsOf: (item: I) => unknown[];
  /** The item's answer, read from its own statements' results. */
  resultOf: (results: unknown[], item: I) => R;
}

/**
 * Runs `items` as one multi-statement transaction (one round trip, one commit), items sorted by account so
 * concurrent batches lock rows in the same order; retried whole if InnoDB picks it as a deadlock victim.
 */
export async function runItemScript<I, R>(db: Db, items: I[], script: ItemScript<I, R>): Promise<R[]> {
  const ordered = inLockOrder(items, script.accountOf);
  const sql = `START TRANSACTION;${script.statements.repeat(ordered.length)}\nCOMMIT;`;
  const params = ordered.flatMap(({ item }) => script.paramsOf(item));
  const results = await retryOnDeadlock(() => runScript(db, sql, params));
  const answers = new Array<R>(items.length);
  ordered.forEach(({ item, index }, position) => {
    const first = 1 + script.resultsPerItem * position; // results[0] is START TRANSACTION
    answers[index] = script.resultOf(results.slice(first, first + script.resultsPerItem), item);
  });
  return answers;
}
