import { readFileSync } from 'node:fs';
import { type Command, Redis, type RedisOptions } from 'ioredis';
import { log } from '../log.js';
import { patientTimeout } from '../patient-timeout.js';

export type { Redis };

/** Reconnect attempts back off to at most a second apart, so service resumes within a second of Redis's return. */
const reconnectDelay = (attempt: number) => Math.min(attempt * 50, 1_000);

/** One Redis connection. `rediss://` URLs get TLS from ioredis itself. A `commandTimeout` is patient (below). */
export function createRedis(url: string, options: RedisOptions = {}): Redis {
  const { commandTimeout, ...rest } = options;
  const redis = new Redis(url, { maxRetriesPerRequest: null, enableAutoPipelining: true, retryStrategy: reconnectDelay, ...rest });
  return commandTimeout === undefined ? redis : withPatientTimeout(redis, commandTimeout);
}

/**
 * Commands fail after `timeoutMs` without a reply (Redis unreachable or stopped answering), not counting
 * time this process was too busy to read a reply (src/patient-timeout.ts): ioredis's own `commandTimeout` is a
 * plain timer, and after a burst it fails commands Redis has long answered, and their requests with 500.
 */
function withPatientTimeout(redis: Redis, timeoutMs: number): Redis {
  const timed = new WeakSet<Command>();
  const send = redis.sendCommand.bind(redis);
  redis.sendCommand = (command, stream) => {
    // a command sent again after a reconnect keeps the timer it got first
    if (!timed.has(command)) {
      timed.add(command);
      const stop = patientTimeout(
        timeoutMs,
        () => command.isSettled,
        () => command.reject(new Error('Command timed out')),
      );
      command.promise.then(stop, stop);
    }
    return send(command, stream);
  };
  return redis;
}

/**
 * Logs a lost connection once per outage (not on every reconnect attempt), and its return; the commands
 * that fail meanwhile report their own errors. For the long-running processes' connections.
 */
export function reportOutages(redis: Redis, name: string): Redis {
  let down = false;
  redis.on('error', (err: Error) => {
    if (down) return;
    down = true;
    log.warn({ connection: name, err: { message: err.message } }, 'redis connection lost; reconnecting');
  });
  redis.on('ready', () => {
    if (down) log.info({ connection: name }, 'redis connection back');
    down = false;
  });
  return redis;
}

/**
 * Options of a web process's request-path connections: no command waits more than 3 s for Redis, also while
 * it sits in the offline queue during a reconnect or on a connection that stopped answering, so a client gets
 * 500 internal_error in seconds instead of hanging; a short blip (a restart) is still ridden out. Time the
 * process itself was too busy to read a reply does not count (withPatientTimeout).
 */
export const REQUEST_PATH_OPTIONS: RedisOptions = { maxRetriesPerRequest: 2, connectTimeout: 3_000, commandTimeout: 3_000 };

/** Reads a `.lua` file that sits next to the calling module (copied into dist/ by the build). */
export function loadLua(moduleUrl: string, name: string): string {
  return readFileSync(new URL(name, moduleUrl), 'utf8');
}

/**
 * Every Redis key and channel of the app, under one prefix with a hash tag (`{eastx}`), so the layout
 * works on Redis Cluster unchanged. BullMQ queues use the same prefix.
 */
export class RedisKeys {
  constructor(readonly prefix: string) {}
  rpm = (keyId: number) => `${this.prefix}:rpm:${keyId}`;
  keyVersion = (keyHash: string) => `${this.prefix}:keyver:${keyHash}`;
  catalogVersion = () => `${this.prefix}:catalog:ver`;
  catalogChannel = () => `${this.prefix}:catalog`;
  leases = (tokenId: number) => `${this.prefix}:lease:${tokenId}`;
  cooldown = (tokenId: number) => `${this.prefix}:cooldown:${tokenId}`;
  /** how many cooldowns in a row a token had: its next backoff */
  cooldownLevel = (tokenId: number) => `${this.prefix}:cooldown-level:${tokenId}`;
  failures = (tokenId: number) => `${this.prefix}:failures:${tokenId}`;
  /** a channel's health (hash: failures in a row, unhealthy_since, last_error, last_error_at) */
  channelHealth = (channelId: number) => `${this.prefix}:channel-health:${channelId}`;
  /** an API key's requests in flight (sorted set: request id → lease expiry ms) */
  inflight = (keyId: number) => `${this.prefix}:inflight:${keyId}`;
  relay = (webId: string) => `${this.prefix}:relay:${webId}`;
  cancel = () => `${this.prefix}:cancel`;
  /** set when a client left, so a job still queued at that moment is cancelled when it starts */
  cancelled = (requestId: string) => `${this.prefix}:cancelled:${requestId}`;
  /** exists from a stream's first chunk to its end: a re-run must not start that stream over */
  streamStarted = (requestId: string) => `${this.prefix}:streamed:${requestId}`;
  /** which worker process runs a job (its worker id), from the run's start to its final frame */
  runClaim = (requestId: string) => `${this.prefix}:run:${requestId}`;
  /** a worker process subscribes to this channel while it lives: PUBSUB NUMSUB tells a busy process from a dead one */
  workerPresence = (workerId: string) => `${this.prefix}:worker:${workerId}`;
  /** a console session, by the SHA-256 of its id (src/console/sessions.ts) */
  session = (idHash: string) => `${this.prefix}:session:${idHash}`;
  /** a session's one-time message for its next page, sealed */
  flash = (idHash: string) => `${this.prefix}:flash:${idHash}`;
  /** key prefix of a console throttle (rate-limiter-flexible appends `:<key>`) */
  throttle = (name: string) => `${this.prefix}:throttle:${name}`;
  /** a job's final relay message, kept briefly for a web process whose subscriber missed it */
  result = (requestId: string) => `${this.prefix}:result:${requestId}`;
  /** request ids that answered an error while MariaDB was unreachable: made unbillable once it is back */
  unbillable = () => `${this.prefix}:unbillable`;
}
