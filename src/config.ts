/** Environment → typed configuration (SPEC §5), read once per process. */
export interface Config {
  env: string;
  port: number;
  databaseUrl: string;
  redisUrl: string;
  adminToken: string | undefined;
  metricsToken: string | undefined;
  appSecret: string;
  workerConcurrency: number;
  /** Redis key prefix including the Cluster hash tag, e.g. `{eastx}`. */
  redisPrefix: string;
  bodyLimitBytes: number;
  chatDeadlineMs: number;
  imageDeadlineMs: number;
  /** First wait between DashScope image-task polls; later waits grow to 4× this. */
  imagePollMs: number;
  /** Largest produced image the worker downloads for a `b64_json` answer. */
  imageMaxBytes: number;
  /** Largest non-stream upstream answer the worker reads (a larger one is a 502, uncharged). */
  upstreamAnswerMaxBytes: number;
  /** orphaned-hold sweeper: how often, and the minimum age of a hold it may release */
  holdSweepMs: number;
  holdMinAgeMs: number;
  /** a channel with this many failed calls in a row (5xx, no connection, no first byte) is unhealthy */
  channelUnhealthyAfter: number;
  /** how often unhealthy channels are probed */
  channelProbeMs: number;
  /** a call that produced nothing usable this long (no stream chunk, no answer) moves to the next token or route */
  upstreamFirstByteMs: number;
  logLevel: string;
}

const DEV_SECRET = 'eastx-dev-secret-do-not-use-in-production';

function intFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer`);
  return value;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const nodeEnv = env.NODE_ENV ?? 'development';
  const appSecret = env.APP_SECRET ?? '';
  if (!appSecret && nodeEnv !== 'development' && nodeEnv !== 'test') {
    throw new Error('APP_SECRET is required when NODE_ENV is not development or test');
  }
  const prefix = env.QUEUE_PREFIX || 'eastx';
  return {
    env: nodeEnv,
    port: intFromEnv(env, 'PORT', 8080),
    databaseUrl: env.DATABASE_URL || env.JAWSDB_URL || env.CLEARDB_DATABASE_URL || 'mysql://root@127.0.0.1:3306/eastx',
    redisUrl: env.REDIS_URL || 'redis://127.0.0.1:6379',
    adminToken: env.ADMIN_TOKEN || undefined,
    metricsToken: env.METRICS_TOKEN || env.ADMIN_TOKEN || undefined,
    appSecret: appSecret || DEV_SECRET,
    workerConcurrency: intFromEnv(env, 'WORKER_CONCURRENCY', 64),
    redisPrefix: prefix.startsWith('{') ? prefix : `{${prefix}}`,
    bodyLimitBytes: intFromEnv(env, 'BODY_LIMIT_BYTES', 20 * 1024 * 1024),
    chatDeadlineMs: intFromEnv(env, 'CHAT_DEADLINE_MS', 10 * 60_000),
    imageDeadlineMs: intFromEnv(env, 'IMAGE_DEADLINE_MS', 90_000),
    holdSweepMs: intFromEnv(env, 'HOLD_SWEEP_MS', 30_000),
    holdMinAgeMs: intFromEnv(env, 'HOLD_MIN_AGE_MS', 60_000),
    imagePollMs: intFromEnv(env, 'IMAGE_POLL_MS', 500),
    channelUnhealthyAfter: intFromEnv(env, 'CHANNEL_UNHEALTHY_AFTER', 5),
    channelProbeMs: intFromEnv(env, 'CHANNEL_PROBE_MS', 15_000),
    upstreamFirstByteMs: intFromEnv(env, 'UPSTREAM_FIRST_BYTE_MS', 120_000),
    imageMaxBytes: intFromEnv(env, 'IMAGE_MAX_BYTES', 8 * 1024 * 1024),
    // the largest legitimate answer is embeddings: 2048 inputs × 3072 floats as JSON text, about 150 MB
    upstreamAnswerMaxBytes: intFromEnv(env, 'UPSTREAM_ANSWER_MAX_BYTES', 256 * 1024 * 1024),
    logLevel: env.LOG_LEVEL || (nodeEnv === 'test' ? 'warn' : 'info'),
  };
}

let cached: Config | undefined;
export function config(): Config {
  cached ??= loadConfig();
  return cached;
}
