import { loadLua, type Redis, type RedisKeys } from '../redis/index.js';
import type { FinalMessage, JobBase, RelayFrame } from './jobs.js';

const CANCEL_MARK_MS = 15 * 60_000;
const FINAL = loadLua(import.meta.url, './relay-final.lua');
/**
 * How long a job's final message is kept: for a web process that missed it (RelayHub.keptFinal), and so that
 * a re-run of the job (BullMQ takes a dead worker's job over within 15 s) knows the client was answered.
 */
const RESULT_TTL_MS = 30_000;
/** A job that published nothing for this long sends a heartbeat (checked every HEARTBEAT_CHECK_MS). */
export const HEARTBEAT_AFTER_MS = 2_000;
const HEARTBEAT_CHECK_MS = 1_000;

/** The web side of one job's relay: messages in arrival order, awaited with a timeout. */
export class RelayStream {
  private readonly buffered: RelayFrame[] = [];
  private waiter: ((message: RelayFrame | undefined) => void) | undefined;
  private ended = false;
  private poked = false;

  push(message: RelayFrame): void {
    if (this.waiter) {
      const wake = this.waiter;
      this.waiter = undefined;
      wake(message);
    } else if (message.t !== 'hb') {
      this.buffered.push(message);
    }
  }

  /** Wakes a pending `next` (or the next call) with undefined at once, so its caller looks for itself. */
  poke(): void {
    const wake = this.waiter;
    this.waiter = undefined;
    if (wake) wake(undefined);
    else this.poked = true;
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

  /** The next message, or undefined after `timeoutMs` of silence (or once ended, or poked). */
  next(timeoutMs: number): Promise<RelayFrame | undefined> {
    const ready = this.buffered.shift();
    if (ready) return Promise.resolve(ready);
    if (this.ended) return Promise.resolve(undefined);
    if (this.poked) {
      this.poked = false;
      return Promise.resolve(undefined);
    }
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
 *
 * Messages published while the subscription is down (Redis restarting) are lost; every open request is
 * poked when it drops and again once it is back, to look for its kept final message (`keptFinal`).
 */
export class RelayHub {
  private readonly streams = new Map<string, RelayStream>();
  private downSince: number | undefined;

  constructor(
    private readonly subscriber: Redis,
    private readonly publisher: Redis,
    private readonly keys: RedisKeys,
    readonly webId: string,
  ) {}

  async start(): Promise<void> {
    const channel = this.keys.relay(this.webId);
    this.subscriber.on('message', (_channel: string, text: string) => {
      let message: RelayFrame;
      try {
        message = JSON.parse(text) as RelayFrame;
      } catch {
        return;
      }
      this.streams.get(message.id)?.push(message);
    });
    this.subscriber.on('close', () => {
      this.downSince ??= Date.now();
      this.pokeAll();
    });
    this.subscriber.on('ready', () => {
      if (this.downSince === undefined) return;
      // ioredis resubscribes by itself on reconnect; this SUBSCRIBE's reply comes after that one's
      this.subscriber.subscribe(channel).then(() => {
        this.downSince = undefined;
        this.pokeAll();
      }, () => undefined);
    });
    await this.subscriber.subscribe(channel);
  }

  /** How long this process's relay subscription has been down; undefined while it is up. */
  downForMs(): number | undefined {
    return this.downSince === undefined ? undefined : Date.now() - this.downSince;
  }

  /** The job's final message as its worker kept it (it may have gone out while the subscription was down). */
  async keptFinal(requestId: string): Promise<FinalMessage | undefined> {
    const text = await this.publisher.get(this.keys.result(requestId));
    return text ? (JSON.parse(text) as FinalMessage) : undefined;
  }

  private pokeAll(): void {
    for (const stream of this.streams.values()) stream.poke();
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

type RelayRedis = Redis & {
  eastxRelayFinal(resultKey: string, startedKey: string, channel: string, payload: string, ttlMs: number): Promise<number>;
};

/**
 * The worker side: publishes one job's messages in order and reports how many web processes listened.
 * The final message also stays in Redis for a while (relay-final.lua, one call), and `keepAlive` sends
 * heartbeats while the job is otherwise silent.
 */
export class RelayPublisher {
  private seq = 0;
  private startedMarked = false;
  private lastSentAt = Date.now();
  private readonly redis: RelayRedis;

  constructor(
    redis: Redis,
    private readonly channel: string,
    private readonly requestId: string,
    private readonly keys: {
      result: string;
      /** Marks "the client got part of the answer" from the first chunk until the final message. */
      started: string;
      startedTtlMs: number;
    },
  ) {
    if (!('eastxRelayFinal' in redis)) redis.defineCommand('eastxRelayFinal', { numberOfKeys: 2, lua: FINAL });
    this.redis = redis as RelayRedis;
  }

  static forJob(redis: Redis, keys: RedisKeys, job: JobBase): RelayPublisher {
    const startedTtlMs = Math.max(0, job.deadlineAt - Date.now()) + 60_000;
    return new RelayPublisher(redis, keys.relay(job.webId), job.requestId, {
      result: keys.result(job.requestId),
      started: keys.streamStarted(job.requestId),
      startedTtlMs,
    });
  }

  send(message: Record<string, unknown> & { t: FinalMessage['t'] | 'chunk' }): Promise<number> {
    const payload = JSON.stringify({ id: this.requestId, seq: this.seq++, ...message });
    this.lastSentAt = Date.now();
    if (message.t !== 'chunk') return this.redis.eastxRelayFinal(this.keys.result, this.keys.started, this.channel, payload, RESULT_TTL_MS);
    if (!this.startedMarked) {
      this.startedMarked = true;
      void this.redis.set(this.keys.started, '1', 'PX', this.keys.startedTtlMs).catch(() => undefined);
    }
    return this.redis.publish(this.channel, payload);
  }

  /** Sends a heartbeat whenever the job published nothing for HEARTBEAT_AFTER_MS; returns the stop function. */
  keepAlive(): () => void {
    const heartbeat = JSON.stringify({ id: this.requestId, t: 'hb' });
    const timer = setInterval(() => {
      // while Redis is away a heartbeat would only queue up behind the job's real messages
      if (Date.now() - this.lastSentAt < HEARTBEAT_AFTER_MS || this.redis.status !== 'ready') return;
      this.lastSentAt = Date.now();
      void this.redis.publish(this.channel, heartbeat).catch(() => undefined);
    }, HEARTBEAT_CHECK_MS);
    timer.unref();
    return () => clearInterval(timer);
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
