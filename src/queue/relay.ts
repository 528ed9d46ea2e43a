import type { Redis, RedisKeys } from '../redis/index.js';
import type { JobBase, RelayMessage } from './jobs.js';

const CANCEL_MARK_MS = 15 * 60_000;

/** The web side of one job's relay: messages in arrival order, awaited with a timeout. */
export class RelayStream {
  private readonly buffered: RelayMessage[] = [];
  private waiter: ((message: RelayMessage | undefined) => void) | undefined;
  private ended = false;

  push(message: RelayMessage): void {
    if (this.waiter) {
      const wake = this.waiter;
      this.waiter = undefined;
      wake(message);
    } else {
      this.buffered.push(message);
    }
  }

  /** Stops waiting (the client went away): pending and later `next` calls answer undefined at once. */
  end(): void {
    this.ended = true;
    const wake = this.waiter;
    this.waiter = undefined;
    wake?.(undefined);
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** The next message, or undefined after `timeoutMs` of silence (or once ended). */
  next(timeoutMs: number): Promise<RelayMessage | undefined> {
    const ready = this.buffered.shift();
    if (ready) return Promise.resolve(ready);
    if (this.ended) return Promise.resolve(undefined);
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

  /** Tells whichever worker holds the job (or will pick it up) to abort its upstream call. */
  async cancel(requestId: string): Promise<void> {
    await Promise.all([
      this.publisher.set(this.keys.cancelled(requestId), '1', 'PX', CANCEL_MARK_MS),
      this.publisher.publish(this.keys.cancel(), requestId),
    ]);
  }
}

/** The worker side: publishes one job's messages in order and reports how many web processes listened. */
export class RelayPublisher {
  private seq = 0;
  private startedMarked = false;

  constructor(
    private readonly redis: Redis,
    private readonly channel: string,
    private readonly requestId: string,
    /** Marks "the client got part of the answer" from the first chunk until the final message. */
    private readonly started?: { key: string; ttlMs: number },
  ) {}

  static forJob(redis: Redis, keys: RedisKeys, job: JobBase): RelayPublisher {
    const ttlMs = Math.max(0, job.deadlineAt - Date.now()) + 60_000;
    return new RelayPublisher(redis, keys.relay(job.webId), job.requestId, { key: keys.streamStarted(job.requestId), ttlMs });
  }

  send(message: Record<string, unknown> & { t: RelayMessage['t'] }): Promise<number> {
    const payload = JSON.stringify({ id: this.requestId, seq: this.seq++, ...message });
    if (this.started) {
      if (message.t === 'chunk' && !this.startedMarked) {
        this.startedMarked = true;
        void this.redis.set(this.started.key, '1', 'PX', this.started.ttlMs).catch(() => undefined);
      } else if (message.t !== 'chunk' && this.startedMarked) {
        void this.redis.del(this.started.key).catch(() => undefined);
      }
    }
    return this.redis.publish(this.channel, payload);
  }
}

/**
 * Worker side: notices when the web process a job answers to is gone (its relay channel has no subscriber
 * for `goneAfterMs`), also while the upstream is silent and nothing is published. One PUBSUB NUMSUB per
 * interval covers every job of the process.
 */
export class ListenerWatch {
  private readonly jobs = new Map<string, { channel: string; onGone: () => void; silentSince?: number }>();
  private readonly timer: NodeJS.Timeout;
  private checking = false;

  constructor(
    private readonly redis: Redis,
    private readonly goneAfterMs = 3_000,
    intervalMs = 1_000,
  ) {
    this.timer = setInterval(() => void this.check().catch(() => undefined), intervalMs);
    this.timer.unref();
  }

  watch(requestId: string, channel: string, onGone: () => void): () => void {
    this.jobs.set(requestId, { channel, onGone });
    return () => this.jobs.delete(requestId);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async check(): Promise<void> {
    if (this.checking || this.jobs.size === 0) return;
    this.checking = true;
    try {
      const channels = [...new Set([...this.jobs.values()].map((j) => j.channel))];
      const reply = (await this.redis.pubsub('NUMSUB', ...channels)) as Array<string | number>;
      const listeners = new Map<string, number>();
      for (let i = 0; i < reply.length; i += 2) listeners.set(String(reply[i]), Number(reply[i + 1]));
      const now = Date.now();
      for (const [requestId, job] of this.jobs) {
        if ((listeners.get(job.channel) ?? 0) > 0) {
          job.silentSince = undefined;
        } else if (job.silentSince === undefined) {
          job.silentSince = now;
        } else if (now - job.silentSince >= this.goneAfterMs) {
          this.jobs.delete(requestId);
          job.onGone();
        }
      }
    } finally {
      this.checking = false;
    }
  }
}
