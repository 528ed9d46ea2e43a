import { PeriodicSet } from '../periodic-set.js';
import { loadLua, type Redis, type RedisKeys } from '../redis/index.js';
import { type ChunkFrame, type DoneFrame, type ErrorFrame, encodeFrame, LARGE_FRAME_CHARS } from './frames.js';
import { type JobBase, markTtlMs } from './jobs.js';

const FINAL = loadLua(import.meta.url, './relay-final.lua');
/**
 * How long a job's final frame is kept: for a web process that missed it (RelayHub.keptFinal), and so that
 * a re-run of the job (BullMQ takes a dead worker's job over within 15 s) knows the client was answered.
 */
const RESULT_TTL_MS = 30_000;
/** A job that published nothing for this long sends a heartbeat (checked every HEARTBEAT_CHECK_MS). */
const HEARTBEAT_AFTER_MS = 2_000;
const HEARTBEAT_CHECK_MS = 1_000;

type RelayRedis = Redis & {
  eastxRelayFinal(
    resultKey: string,
    startedKey: string,
    claimKey: string,
    channel: string,
    payload: string,
    ttlMs: number,
    published: string,
    runner: string,
  ): Promise<number>;
};

const keptFrame = (id: string) => encodeFrame({ id, t: 'kept' });

/** What a frame carries besides its id and sequence number. */
type Payload<F> = F extends unknown ? Omit<F, 'id' | 'seq'> : never;

/**
 * The worker side of one job's relay: publishes its frames in order (the sequence rule of ./frames.ts) and
 * reports how many web processes listened. The final frame also stays in Redis for a while
 * (relay-final.lua, one call); a "stream started" mark exists from the first chunk until then, so a re-run
 * knows not to start the stream over; `keepAlive` sends heartbeats while the job is otherwise silent.
 */
export class RelayPublisher {
  private seq = 0;
  private startedMarked = false;
  private lastSentAt = Date.now();
  private readonly redis: RelayRedis;
  private readonly channel: string;
  private readonly resultKey: string;
  private readonly startedKey: string;
  private readonly claimKey: string;

  /** `runner`: the worker id of the run sending (its claim on the run ends with the final frame). */
  constructor(
    redis: Redis,
    keys: RedisKeys,
    private readonly job: JobBase,
    private readonly runner: string,
  ) {
    if (!('eastxRelayFinal' in redis)) redis.defineCommand('eastxRelayFinal', { numberOfKeys: 3, lua: FINAL });
    this.redis = redis as RelayRedis;
    this.channel = keys.relay(job.webId);
    this.resultKey = keys.result(job.requestId);
    this.startedKey = keys.streamStarted(job.requestId);
    this.claimKey = keys.runClaim(job.requestId);
  }

  send(frame: Payload<ChunkFrame | DoneFrame | ErrorFrame>): Promise<number> {
    const sentAt = frame.t === 'done' && this.job.trace ? { sentAt: Date.now() } : {};
    const payload = encodeFrame({ id: this.job.requestId, seq: this.seq++, ...frame, ...sentAt } as ChunkFrame | DoneFrame | ErrorFrame);
    this.lastSentAt = Date.now();
    if (frame.t !== 'chunk') {
      const published = payload.length > LARGE_FRAME_CHARS ? keptFrame(this.job.requestId) : payload;
      return this.redis.eastxRelayFinal(
        this.resultKey,
        this.startedKey,
        this.claimKey,
        this.channel,
        payload,
        RESULT_TTL_MS,
        published,
        this.runner,
      );
    }
    if (!this.startedMarked) {
      this.startedMarked = true;
      void this.redis.set(this.startedKey, '1', 'PX', markTtlMs(this.job)).catch(() => undefined);
    }
    return this.redis.publish(this.channel, payload);
  }

  /** Counts the job in its process's heartbeats while it is silent (see Heartbeats); returns the stop function. */
  keepAlive(): () => void {
    return heartbeatsOf(this.redis).add(this.channel, this.job.requestId, () => this.lastSentAt);
  }
}

type SilentJob = { channel: string; lastSentAt: () => number };

/**
 * "Still running" for every job of a worker process that published nothing for HEARTBEAT_AFTER_MS: one
 * frame per web process's channel per HEARTBEAT_CHECK_MS, naming those jobs, so thousands of silent streams
 * cost a few PUBLISH a second, not thousands.
 */
class Heartbeats {
  private readonly jobs = new PeriodicSet<string, SilentJob>(HEARTBEAT_CHECK_MS, (jobs) => this.beat(jobs));

  constructor(private readonly redis: Redis) {}

  add(channel: string, requestId: string, lastSentAt: () => number): () => void {
    this.jobs.add(requestId, { channel, lastSentAt });
    return () => this.jobs.delete(requestId);
  }

  private beat(jobs: ReadonlyMap<string, SilentJob>): void {
    // while Redis is away a heartbeat would only queue up behind the jobs' real frames
    if (this.redis.status !== 'ready') return;
    const silentSince = Date.now() - HEARTBEAT_AFTER_MS;
    const byChannel = new Map<string, string[]>();
    for (const [id, job] of jobs) {
      if (job.lastSentAt() > silentSince) continue;
      const ids = byChannel.get(job.channel);
      if (ids) ids.push(id);
      else byChannel.set(job.channel, [id]);
    }
    for (const [channel, ids] of byChannel) void this.redis.publish(channel, encodeFrame({ t: 'hb', ids })).catch(() => undefined);
  }
}

const heartbeats = new WeakMap<Redis, Heartbeats>();
function heartbeatsOf(redis: Redis): Heartbeats {
  let found = heartbeats.get(redis);
  if (!found) heartbeats.set(redis, (found = new Heartbeats(redis)));
  return found;
}

/** For a re-run: whether an earlier run of the job showed output (a chunk) or sent its final frame. */
export async function shownOrAnswered(redis: Redis, keys: RedisKeys, requestId: string): Promise<boolean> {
  return (await redis.exists(keys.streamStarted(requestId), keys.result(requestId))) > 0;
}

/** For a re-run: sends an earlier run's kept final frame again (the web side may have missed it); false if none. */
export async function resendKeptFinal(redis: Redis, keys: RedisKeys, job: JobBase): Promise<boolean> {
  const kept = await redis.get(keys.result(job.requestId));
  if (kept) await redis.publish(keys.relay(job.webId), kept.length > LARGE_FRAME_CHARS ? keptFrame(job.requestId) : kept);
  return kept !== null;
}

/**
 * Notices when the web process a job answers to is gone (its relay channel has no subscriber for
 * `goneAfterMs`), also while the upstream is silent and nothing is published. One PUBSUB NUMSUB per
 * interval covers every job of the process.
 */
export class ListenerWatch {
  private readonly jobs = new Map<string, { channel: string; onGone: () => void; silentSince?: number }>();
  private readonly timer: NodeJS.Timeout;
  private checking = false;

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly goneAfterMs = 3_000,
    intervalMs = 1_000,
  ) {
    this.timer = setInterval(() => void this.check().catch(() => undefined), intervalMs);
    this.timer.unref();
  }

  watch(job: JobBase, onGone: () => void): () => void {
    this.jobs.set(job.requestId, { channel: this.keys.relay(job.webId), onGone });
    return () => this.jobs.delete(job.requestId);
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
