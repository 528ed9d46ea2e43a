/**
 * Members that one interval timer visits while there are any: the timer starts with the first member and
 * stops with the last, so thousands of held streams or silent jobs cost one timer, not one each.
 */
export class PeriodicSet<K, V> {
  private readonly members = new Map<K, V>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly everyMs: number,
    private readonly visit: (members: ReadonlyMap<K, V>) => void,
  ) {}

  add(key: K, value: V): void {
    this.members.set(key, value);
    this.timer ??= setInterval(() => this.visit(this.members), this.everyMs).unref();
  }

  delete(key: K): void {
    if (!this.members.delete(key) || this.members.size > 0) return;
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
