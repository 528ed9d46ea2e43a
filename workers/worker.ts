import { Worker, type Job } from 'bullmq';
import { Catalog } from '../src/catalog/catalog.js';
import { config } from '../src/config.js';
import { createDb } from '../src/db/index.js';
import { log } from '../src/log.js';
import { channelQueueName, type JobData, type JobKind } from '../src/queue/jobs.js';
import { createRedis, RedisKeys } from '../src/redis/index.js';
import { TokenPool } from '../src/upstream/pool.js';
import { SecretBox } from '../src/upstream/secrets.js';
import { processChat } from './chat.js';
import type { JobSummary } from './job-kit.js';
import type { WorkerContext } from './context.js';

/** BullMQ lock: a killed worker's job is taken over after at most lockDuration + stalledInterval. */
const LOCK_DURATION_MS = 10_000;
const STALLED_INTERVAL_MS = 5_000;
const CATALOG_POLL_MS = 5_000;

type Processor = (ctx: WorkerContext, job: Job<JobData>, signal: AbortSignal, abort: (reason: unknown) => void) => Promise<JobSummary>;

/** One processor per job kind (the job's name in Bull Board says which). */
const PROCESSORS: Partial<Record<JobKind, Processor>> = {
  chat: processChat as Processor,
};

/** Worker process entry (Procfile `worker`): one BullMQ Worker per channel queue, drained on SIGTERM. */
async function main(): Promise<void> {
  const cfg = config();
  const keys = new RedisKeys(cfg.redisPrefix);
  const redis = createRedis(cfg.redisUrl);
  const subscriber = createRedis(cfg.redisUrl, { enableAutoPipelining: false });
  const bullConnection = createRedis(cfg.redisUrl, { enableAutoPipelining: false });
  const db = createDb(cfg.databaseUrl, 20);
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
  const process_ = async (job: Job<JobData>): Promise<JobSummary> => {
    const controller = new AbortController();
    running.set(job.data.requestId, controller);
    const deadline = setTimeout(() => controller.abort({ failure: 'timeout' }), Math.max(0, job.data.deadlineAt - Date.now()));
    try {
      const processor = PROCESSORS[job.data.kind];
      if (!processor) throw new Error(`no processor for ${job.data.kind} jobs`);
      return await processor(ctx, job, controller.signal, (reason) => controller.abort(reason));
    } finally {
      clearTimeout(deadline);
      running.delete(job.data.requestId);
    }
  };

  const workers = new Map<number, Worker>();
  const syncWorkers = async () => {
    const catalog = await ctx.catalog.current();
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
      workers.set(channelId, worker);
      log.info({ channelId }, 'worker listening on channel queue');
    }
  };

  subscriber.on('message', (channel: string, message: string) => {
    if (channel === keys.cancel()) running.get(message)?.abort({ failure: 'cancelled' });
    else if (channel === keys.catalogChannel()) void syncWorkers().catch((err) => log.error({ err: { message: err.message } }, 'catalog sync failed'));
  });
  await subscriber.subscribe(keys.cancel(), keys.catalogChannel());
  await syncWorkers();
  const poll = setInterval(() => void syncWorkers().catch(() => undefined), CATALOG_POLL_MS);
  log.info({ concurrency: cfg.workerConcurrency }, 'worker started');

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'worker stopping: finishing jobs in flight');
    clearInterval(poll);
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
