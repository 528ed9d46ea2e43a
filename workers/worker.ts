import { Worker, type Job } from 'bullmq';
import { Catalog } from '../src/catalog/catalog.js';
import { config } from '../src/config.js';
import { createDb, SERVICE_DB_OPTIONS } from '../src/db/index.js';
import { log } from '../src/log.js';
import { channelQueueName, type JobData, type JobKind } from '../src/queue/jobs.js';
import { ListenerWatch } from '../src/queue/relay.js';
import { createRedis, RedisKeys, reportOutages } from '../src/redis/index.js';
import { TokenPool } from '../src/upstream/pool.js';
import { HoldSweeper } from './hold-sweeper.js';
import { SecretBox } from '../src/upstream/secrets.js';
import { processChat } from './chat.js';
import { abandon, interrupted, isRerun, rerunRefusal, STALLED_TOO_OFTEN } from './crash-recovery.js';
import { processEmbeddings } from './embeddings.js';
import { processImages } from './images.js';
import type { JobSummary } from './job-kit.js';
import type { WorkerContext } from './context.js';

/**
 * BullMQ lock: a killed worker's lock expires within LOCK_DURATION_MS (renewed every half of it), and the
 * next stalled check (every STALLED_INTERVAL_MS, on every worker) re-queues its job: taken over within
 * lockDuration + stalledInterval = 15 s. A job whose worker dies twice (maxStalledCount 1) is failed.
 */
const LOCK_DURATION_MS = 10_000;
const STALLED_INTERVAL_MS = 5_000;
/** No subscriber on a job's relay channel for this long: the web process that owned the request is gone. */
const LISTENER_GONE_MS = 3_000;
const CATALOG_POLL_MS = 5_000;

type Processor = (ctx: WorkerContext, job: Job<JobData>, signal: AbortSignal) => Promise<JobSummary>;

/** One processor per job kind (the job's name in Bull Board says which). */
const PROCESSORS: Partial<Record<JobKind, Processor>> = {
  chat: processChat as Processor,
  embeddings: processEmbeddings as Processor,
  images: processImages as Processor,
};

/** Worker process entry (Procfile `worker`): one BullMQ Worker per channel queue, drained on SIGTERM. */
async function main(): Promise<void> {
  const cfg = config();
  const keys = new RedisKeys(cfg.redisPrefix);
  const redis = reportOutages(createRedis(cfg.redisUrl), 'jobs');
  const subscriber = reportOutages(createRedis(cfg.redisUrl, { enableAutoPipelining: false }), 'subscriber');
  const bullConnection = reportOutages(createRedis(cfg.redisUrl, { enableAutoPipelining: false }), 'bullmq');
  const db = createDb(cfg.databaseUrl, 20, SERVICE_DB_OPTIONS);
  const ctx: WorkerContext = {
    config: cfg,
    db,
    redis,
    keys,
    catalog: new Catalog(db, redis, keys),
    pool: new TokenPool(redis, keys),
    secrets: new SecretBox(cfg.appSecret),
  };

  const running = new Map<string, AbortController>();
  const listeners = new ListenerWatch(redis, LISTENER_GONE_MS);
  const process_ = async (job: Job<JobData>): Promise<JobSummary> => {
    const { requestId } = job.data;
    const controller = new AbortController();
    running.set(requestId, controller);
    const unwatch = listeners.watch(requestId, keys.relay(job.data.webId), () => controller.abort({ failure: 'cancelled' }));
    const deadline = setTimeout(() => controller.abort({ failure: 'timeout' }), Math.max(0, job.data.deadlineAt - Date.now()));
    try {
      // the client may have left while the job was still queued (the cancel message found no worker then)
      if (await redis.exists(keys.cancelled(requestId))) controller.abort({ failure: 'cancelled' });
      if (isRerun(job)) {
        const refusal = await rerunRefusal(ctx, job.data);
        log.warn({ requestId, jobId: job.id, rerun: !refusal }, 'job taken over from a worker that died');
        if (refusal) {
          await abandon(ctx, job.data, refusal);
          throw refusal;
        }
      }
      const processor = PROCESSORS[job.data.kind];
      if (!processor) throw new Error(`no processor for ${job.data.kind} jobs`);
      return await processor(ctx, job, controller.signal);
    } finally {
      clearTimeout(deadline);
      unwatch();
      running.delete(requestId);
    }
  };

  const workers = new Map<number, Worker>();
  const syncWorkers = async () => {
    const catalog = await ctx.catalog.current();
    ctx.catalog.announce(catalog.version);
    for (const channelId of catalog.channels.keys()) {
      if (workers.has(channelId)) continue;
      const worker = new Worker<JobData, JobSummary>(channelQueueName(channelId), process_, {
        connection: bullConnection,
        prefix: cfg.redisPrefix,
        concurrency: cfg.workerConcurrency,
        lockDuration: LOCK_DURATION_MS,
        stalledInterval: STALLED_INTERVAL_MS,
        maxStalledCount: 1,
      });
      worker.on('error', (err) => log.error({ err: { message: err.message } }, 'bullmq worker error'));
      // BullMQ fails a job whose workers died twice without running it: its client still needs an answer
      worker.on('failed', (job, err) => {
        if (!job || !STALLED_TOO_OFTEN.test(err.message)) return;
        log.warn({ requestId: job.data.requestId, jobId: job.id }, 'job failed: its workers died twice');
        void abandon(ctx, job.data, interrupted()).catch((e) => log.error({ err: { message: (e as Error).message } }, 'could not answer a failed job'));
      });
      workers.set(channelId, worker);
      log.info({ channelId }, 'worker listening on channel queue');
    }
  };

  subscriber.on('message', (channel: string, message: string) => {
    if (channel === keys.cancel()) running.get(message)?.abort({ failure: 'cancelled' });
    else if (channel === keys.catalogChannel()) {
      ctx.catalog.announce(message);
      void syncWorkers().catch((err) => log.error({ err: { message: err.message } }, 'catalog sync failed'));
    }
  });
  await subscriber.subscribe(keys.cancel(), keys.catalogChannel());
  await syncWorkers();
  const sweeper = new HoldSweeper(db, bullConnection, cfg.redisPrefix, {
    intervalMs: cfg.holdSweepMs,
    minAgeMs: cfg.holdMinAgeMs,
    maxAgeMs: Math.max(cfg.chatDeadlineMs, cfg.imageDeadlineMs) + 10 * 60_000,
  });
  sweeper.start();
  const poll = setInterval(() => void syncWorkers().catch(() => undefined), CATALOG_POLL_MS);
  log.info({ concurrency: cfg.workerConcurrency }, 'worker started');

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'worker stopping: finishing jobs in flight');
    clearInterval(poll);
    listeners.stop();
    await sweeper.stop();
    await Promise.race([Promise.all([...workers.values()].map((w) => w.close())), new Promise((r) => setTimeout(r, 25_000))]);
    await Promise.all([redis, subscriber, bullConnection].map((c) => c.quit().catch(() => undefined)));
    await db.destroy();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((err) => {
  log.fatal({ err: { message: (err as Error).message } }, 'worker failed to start');
  process.exit(1);
});
