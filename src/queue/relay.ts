import type { Redis, RedisKeys } from '../redis/index.js';
import type { RelayMessage } from './jobs.js';

/** The web side of one job's relay: messages in arrival order, awaited with a timeout. */
export class RelayStream {
  private readonly buffered: RelayMessage[] = [];
  private waiter: ((message: RelayMessage | undefined) => void) | undefined;

  push(message: RelayMessage): void {
    if (this.waiter) {
      const wake = this.waiter;
      this.waiter = undefined;
      wake(message);
    } else {
      this.buffered.push(message);
    }
  }

  /** The next message, or undefined after `timeoutMs` of silence. */
  next(timeoutMs: number): Promise<RelayMessage | undefined> {
    const ready = this.buffered.shift();
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        resolve(undefined);
      }, timeoutMs);
      this.waiter = (message) => {
        clearTimeout(timer);
        resolve(message);
      };
    });
  }
}

/**
 * One subscription per web process (`…:relay:<webId>`), demultiplexed by request id, so a request costs
 * no SUBSCRIBE of its own and no chunk can arrive before its listener exists.
 */
export class RelayHub {
  private readonly streams = new Map<string, RelayStream>();

  constructor(
    private readonly subscriber: Redis,
    private readonly publisher: Redis,
    private readonly keys: RedisKeys,
    readonly webId: string,
  ) {}

  async start(): Promise<void> {
    this.subscriber.on('message', (_channel: string, text: string) => {
      let message: RelayMessage;
      try {
        message = JSON.parse(text) as RelayMessage;
      } catch {
        return;
      }
      this.streams.get(message.id)?.push(message);
    });
    await this.subscriber.subscribe(this.keys.relay(this.webId));
  }

  open(requestId: string): RelayStream {
    const stream = new RelayStream();
    this.streams.set(requestId, stream);
    return stream;
  }

  close(requestId: string): void {
    this.streams.delete(requestId);
  }

  get openCount(): number {
    return this.streams.size;
  }

  /** Tells whichever worker holds the job to abort its upstream call. */
  async cancel(requestId: string): Promise<void> {
    await this.publisher.publish(this.keys.cancel(), requestId);
  }
}

/** The worker side: publishes one job's messages in order and reports how many web processes listened. */
export class RelayPublisher {
  private seq = 0;

  constructor(
    private readonly redis: Redis,
    private readonly channel: string,
    private readonly requestId: string,
  ) {}

  send(message: Record<string, unknown> & { t: RelayMessage['t'] }): Promise<number> {
    const payload = JSON.stringify({ id: this.requestId, seq: this.seq++, ...message });
    return this.redis.publish(this.channel, payload);
  }
}
