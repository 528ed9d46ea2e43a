import type { Redis, RedisKeys } from '../redis/index.js';
import { requestCancel } from './cancel.js';
import { decodeFrame, type FinalFrame, type SequencedFrame } from './frames.js';

/**
 * A job silent this long (no frame, no heartbeat) gets its request poked by the hub's watchdog, to look for
 * its kept final frame and ask BullMQ about the job (a queued job has no heartbeat; a lost one never speaks).
 */
export const SILENCE_CHECK_MS = 3_000;

/** The web side of one job's relay: frames in arrival order, awaited with a timeout. */
export class RelayStream {
  private readonly buffered: SequencedFrame[] = [];
  private waiter: ((frame: SequencedFrame | undefined) => void) | undefined;
  private ended = false;
  private poked = false;
  private interrupted = false;
  /** When the job last showed it runs (a frame or a heartbeat), epoch ms. */
  heardAt = Date.now();
  private pokedAt = 0;

  push(frame: SequencedFrame): void {
    this.heardAt = Date.now();
    if (this.waiter) {
      const wake = this.waiter;
      this.waiter = undefined;
      wake(frame);
    } else {
      this.buffered.push(frame);
    }
  }

  /**
   * The job's worker still runs it. Nobody is woken: a stream held open for minutes costs no wake-up (and no
   * short-lived promise and timer) per heartbeat.
   */
  heartbeat(): void {
    this.heardAt = Date.now();
  }

  /** Wakes a pending `next` (or the next call) with undefined at once, so its caller looks for itself. */
  poke(): void {
    const wake = this.waiter;
    this.waiter = undefined;
    if (wake) wake(undefined);
    else this.poked = true;
  }

  /** The watchdog's poke: once per SILENCE_CHECK_MS while the job is silent. */
  pokeIfSilent(now: number): void {
    if (now - this.heardAt < SILENCE_CHECK_MS || now - this.pokedAt < SILENCE_CHECK_MS) return;
    this.pokedAt = now;
    this.poke();
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

  /** The process is stopping: the request is woken to answer its client the restart's error (`isInterrupted`). */
  interrupt(): void {
    this.interrupted = true;
    this.poke();
  }

  get isInterrupted(): boolean {
    return this.interrupted;
  }

  /** The next frame, or undefined after `timeoutMs` (or once ended, or poked). */
  next(timeoutMs: number): Promise<SequencedFrame | undefined> {
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
      this.waiter = (frame) => {
        clearTimeout(timer);
        resolve(frame);
      };
    });
  }
}

/**
 * One subscription per web process (`…:relay:<webId>`), demultiplexed by request id, so a request costs
 * no SUBSCRIBE of its own and no frame can arrive before its listener exists.
 *
 * Frames published while the subscription is down (Redis restarting) are lost; every open request is
 * poked when it drops and again once it is back, to look for its kept final frame (`keptFinal`).
 */
export class RelayHub {
  private readonly streams = new Map<string, RelayStream>();
  private downSince: number | undefined;
  private stopping = false;
  private watchdog: NodeJS.Timeout | undefined;

  constructor(
    private readonly subscriber: Redis,
    private readonly publisher: Redis,
    private readonly keys: RedisKeys,
    readonly webId: string,
  ) {}

  async start(): Promise<void> {
    const channel = this.keys.relay(this.webId);
    this.subscriber.on('message', (_channel: string, text: string) => {
      const frame = decodeFrame(text);
      if (!frame) return;
      // one heartbeat frame names every silent job of a worker for this process
      if ('ids' in frame) for (const id of frame.ids) this.streams.get(id)?.heartbeat();
      // a large final frame is only kept: the poked request reads it (keptFinal)
      else if (frame.t === 'kept') this.streams.get(frame.id)?.poke();
      else this.streams.get(frame.id)?.push(frame);
    });
    // one timer for every open request, instead of one per request per silence window
    this.watchdog = setInterval(() => {
      const now = Date.now();
      for (const stream of this.streams.values()) stream.pokeIfSilent(now);
    }, 1_000);
    this.watchdog.unref();
    this.subscriber.on('close', () => {
      this.downSince ??= Date.now();
      this.pokeAll();
    });
    this.subscriber.on('ready', () => {
      if (this.downSince === undefined) return;
      // ioredis resubscribes by itself on reconnect; this SUBSCRIBE's reply comes after that one's
      this.subscriber.subscribe(channel).then(
        () => {
          this.downSince = undefined;
          this.pokeAll();
        },
        () => undefined,
      );
    });
    await this.subscriber.subscribe(channel);
  }

  stop(): void {
    clearInterval(this.watchdog);
  }

  /** How long this process's relay subscription has been down; undefined while it is up. */
  downForMs(): number | undefined {
    return this.downSince === undefined ? undefined : Date.now() - this.downSince;
  }

  /** The job's final frame as its worker kept it (it may have gone out while the subscription was down). */
  async keptFinal(requestId: string): Promise<FinalFrame | undefined> {
    const frame = decodeFrame((await this.publisher.get(this.keys.result(requestId))) ?? '');
    return frame && (frame.t === 'done' || frame.t === 'error') ? frame : undefined;
  }

  private pokeAll(): void {
    for (const stream of this.streams.values()) stream.poke();
  }

  /** The process is stopping: every open request (and any opened from now on) answers its client the restart's error. */
  interruptAll(): void {
    this.stopping = true;
    for (const stream of this.streams.values()) stream.interrupt();
  }

  open(requestId: string): RelayStream {
    const stream = new RelayStream();
    if (this.stopping) stream.interrupt();
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
  cancel(requestId: string): Promise<void> {
    return requestCancel(this.publisher, this.keys, requestId);
  }
}
