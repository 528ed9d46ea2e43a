import { type Job, Queue, Worker } from 'bullmq';
import { HoldSweeper } from '../src/billing/sweeper.js';
import type { UpstreamToken } from '../src/catalog/catalog.js';
import { config } from '../src/config.js';
import { log } from '../src/log.js';
import { abortJob, abortReasonOf } from '../src/queue/abort.js';
import { wasCancelled } from '../src/queue/cancel.js';
import { channelQueueName, type JobData, type JobKind, msUntilDeadline, PROBE_QUEUE } from '../src/queue/jobs.js';
import { ChannelQueues } from '../src/queue/queues.js';
import { ListenerWatch } from '../src/queue/worker-relay.js';
import { connect, disconnect, runProcess, stopOnSignal, within } from '../src/runtime.js';
import { contextFrom, recordStage, startTelemetry } from '../src/telemetry.js';
import { TokenPool } from '../src/upstream/pool.js';
import { sweepExpiredResponses } from '../src/wire/responses/store.js';
import { processChat } from './chat.js';
import type { WorkerContext } from './context.js';
import { abandon, interrupted, isRerun, rerunRefusal, STALLED_TOO_OFTEN } from './crash-recovery.js';
import { processEmbeddings } from './embeddings.js';
import { processImages } from './images.js';
import type { JobSummary } from './job-kit.js';
import { probeUnhealthyChannels } from './probe.js';
import { claimRun, newWorkerId, runClaimedByPresentWorker, takeOverRun } from './run-claim.js';

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
/**
 * Jobs in flight get this long to finish on SIGTERM. Streams still running are then cut (their upstream calls
 * aborted) and get SETTLE_MS to bill what they produced and answer, inside Heroku's 30 s: a stream left
 * running when the process exits would be refused by its re-run (its output reached the client) and go
 * unbilled. A non-stream job still running is left to its re-run on another worker, which answers it.
 */
const DRAIN_MS = 20_000;
const SETTLE_MS = 6_000;
/** How often a worker deletes expired stored responses. */
const RESPONSE_SWEEP_MS = 10 * 60_000;

/**
 * BullMQ's errors for a job whose lock this process could not renew in time and that was re-queued meanwhile:
 * expected after a busy spell (the run-claim rules decide who answers), so a warning, not an error.
 */
const LOST_LOCK = /^(could not renew lock for job|Lock mismatch for job|Missing lock for job) /;

/** What a delivery of a job that another live worker process runs ends with: that run answers the request. */
const LEFT_TO_ANOTHER_RUN: JobSummary = { status: 'left' };

type Processor = (ctx: WorkerContext, job: Job<JobData>, signal: AbortSignal) => Promise<JobSummary>;

/** One processor per job kind (the job's name in Bull Board says which). */
const PROCESSORS: Record<JobKind, Processor> = {
  chat: processChat as Processor,
  embeddings: processEmbeddings as Processor,
  images: processImages as Processor,
};

/** Worker process entry (Procfile `worker`): one BullMQ Worker per channel queue, drained on SIGTERM. */
runProcess('worker', async () => {
  const cfg = config();
  const flushTraces = await startTelemetry('eastx-worker');
  const connections = connect(cfg, 'worker');
  const { redis, subscriber, queueConnection, keys } = connections;
  const workerId = newWorkerId();
  const limitNow = (token: UpstreamToken) =>
    connections.catalog
      .loaded()
      ?.tokensByChannel.get(token.channelId)
      ?.find((t) => t.id === token.id)?.maxConcurrency ?? token.maxConcurrency;
  const pool = new TokenPool(redis, keys, { unhealthyAfter: cfg.channelUnhealthyAfter }, limitNow);
  const ctx: WorkerContext = { ...connections, workerId, pool };

  /** This process's runs by request id: a cancel message aborts one, a second delivery of one waits for it. */
  const running = new Map<string, { controller: AbortController; done: Promise<JobSummary>; stream: boolean }>();
  const listeners = new ListenerWatch(redis, keys, LISTENER_GONE_MS);
  /**
   * A job BullMQ hands this process while this process still runs it: its lock lapsed because the process
   * was too busy to renew it in time (a burst), not because a worker died, and the stalled check re-queued
   * it. Taking it over would void a request that is being answered; the new delivery ends with the run.
   */
  const runJob = (job: Job<JobData>): Promise<JobSummary> => {
    const { requestId } = job.data;
    const current = running.get(requestId);
    if (current) {
      log.warn({ requestId, jobId: job.id }, 'job re-queued while this process still runs it: its lock lapsed');
      return current.done;
    }
    const controller = new AbortController();
    const done = runOnce(job, controller).finally(() => running.delete(requestId));
    running.set(requestId, { controller, done, stream: job.data.kind === 'chat' && job.data.stream });
    return done;
  };
  const runOnce = async (job: Job<JobData>, controller: AbortController): Promise<JobSummary> => {
    const { requestId } = job.data;
    recordStage('queue.pickup', contextFrom(job.data.trace), job.timestamp);
    await withRoutes(job.data);
    const unwatch = listeners.watch(job.data, () => abortJob(controller, 'listener-gone'));
    const deadline = setTimeout(() => abortJob(controller, 'timeout'), msUntilDeadline(job.data));
    try {
      // the client may have left while the job was still queued (the cancel message found no worker then);
      // not awaited: the answer comes before the job's first lease (same connection, in order), so a cancelled
      // job is aborted before its upstream call starts, and the check costs no round trip on the way
      void wasCancelled(redis, keys, requestId).then(
        (cancelled) => cancelled && abortJob(controller, 'cancelled'),
        () => undefined,
      );
      if (isRerun(job)) {
        if (!(await takeOverRun(redis, keys, job.data, workerId, controller.signal))) {
          log.warn({ requestId, jobId: job.id }, 'job re-queued while another worker still runs it: left to that worker');
          return LEFT_TO_ANOTHER_RUN;
        }
        const refusal = await rerunRefusal(ctx, job.data);
        log.warn({ requestId, jobId: job.id, rerun: !refusal }, 'job taken over from a worker that died');
        if (refusal) {
          await abandon(ctx, job.data, refusal);
          throw refusal;
        }
      } else {
        // the run's claim goes out with the cancel check, answered before the first lease the same way: only
        // a delivery that started so late that BullMQ had handed the job to another worker already loses it
        void claimRun(redis, keys, job.data, workerId).then(
          (claimed) => claimed || abortJob(controller, 'superseded'),
          () => undefined,
        );
      }
      return await PROCESSORS[job.data.kind](ctx, job, controller.signal);
    } catch (err) {
      if (abortReasonOf(controller.signal) !== 'superseded') throw err;
      log.warn({ requestId, jobId: job.id }, 'job started after another worker took it over: left to that worker');
      return LEFT_TO_ANOTHER_RUN;
    } finally {
      clearTimeout(deadline);
      unwatch();
    }
  };

  /** A job enqueued by a web process of the release before routes names one channel and upstream model. */
  const withRoutes = async (data: JobData & { upstreamModel?: string }) => {
    if (Array.isArray(data.routes)) return;
    const model = (await ctx.catalog.latest()).models.get(data.model);
    data.routes = data.upstreamModel
      ? [{ channelId: data.channelId, upstreamModel: data.upstreamModel, priority: 0, weight: 1 }]
      : (model?.routes ?? []);
    data.homeRoute = 0;
  };

  /**
   * A job BullMQ failed for stalling twice. Its locks lapse the same way when the process running it is only
   * too busy to renew them (a burst): a run a present worker still claims is left to that run, which answers
   * and bills it (the hold stays while that worker is there); any other gets its error, and nothing is billed.
   */
  const abandonStalled = async (data: JobData) => {
    const { requestId } = data;
    if (await runClaimedByPresentWorker(redis, keys, requestId)) {
      log.warn({ requestId }, 'job failed for stalling twice while a worker that is there still runs it: left to that run');
      return;
    }
    log.warn({ requestId }, 'job failed: its workers died twice');
    await abandon(ctx, data, interrupted());
  };

  const workers = new Map<number, Worker>();
  const syncWorkers = async () => {
    const catalog = await ctx.catalog.current();
    ctx.catalog.announce(catalog.version);
    for (const channelId of catalog.channels.keys()) {
      if (workers.has(channelId)) continue;
      const worker = new Worker<JobData, JobSummary>(channelQueueName(channelId), runJob, {
        connection: queueConnection,
        prefix: cfg.redisPrefix,
        concurrency: cfg.workerConcurrency,
        lockDuration: LOCK_DURATION_MS,
        stalledInterval: STALLED_INTERVAL_MS,
        maxStalledCount: 1,
      });
      worker.on('error', (err) => {
        if (LOST_LOCK.test(err.message))
          log.warn({ err: { message: err.message } }, 'lost the BullMQ lock of a job it ran: too busy to renew it');
        else log.error({ err: { message: err.message } }, 'bullmq worker error');
      });
      // BullMQ fails a job whose workers died twice without running it: its client still needs an answer
      worker.on('failed', (job, err) => {
        if (!job || !STALLED_TOO_OFTEN.test(err.message)) return;
        void abandonStalled(job.data).catch((e) => log.error({ err: { message: (e as Error).message } }, 'could not answer a failed job'));
      });
      workers.set(channelId, worker);
      log.info({ channelId }, 'worker listening on channel queue');
    }
  };

  subscriber.on('message', (channel: string, message: string) => {
    if (channel === keys.cancel()) {
      const run = running.get(message);
      if (run) abortJob(run.controller, 'cancelled');
    } else if (channel === keys.catalogChannel()) {
      ctx.catalog.announce(message);
      void syncWorkers().catch((err) => log.error({ err: { message: err.message } }, 'catalog sync failed'));
    }
  });
  // the presence channel: while this subscription lasts, other workers know this process is alive (./run-claim.ts)
  await subscriber.subscribe(keys.cancel(), keys.catalogChannel(), keys.workerPresence(workerId));
  await syncWorkers();
  const queues = new ChannelQueues(queueConnection, cfg.redisPrefix);
  // a hold stays while BullMQ still has its job, or while a worker that is there runs it (its job removed meanwhile)
  const jobAlive = async (channelId: number, requestId: string) =>
    (await queues.isLive(channelId, requestId)) || (await runClaimedByPresentWorker(redis, keys, requestId));
  const sweeper = new HoldSweeper(ctx.db, redis, keys, jobAlive, {
    intervalMs: cfg.holdSweepMs,
    minAgeMs: cfg.holdMinAgeMs,
    maxAgeMs: Math.max(cfg.chatDeadlineMs, cfg.imageDeadlineMs) + 10 * 60_000,
  });
  sweeper.start();
  // stored responses past their 30 days (SPEC §1b): deleted in bounded batches; any worker may, the DELETE is idempotent
  const responseSweep = setInterval(
    () => void sweepExpiredResponses(ctx.db).catch((err) => log.error({ err: { message: err.message } }, 'response sweep failed')),
    RESPONSE_SWEEP_MS,
  );
  responseSweep.unref();

  // channel health: one repeatable probe job every CHANNEL_PROBE_MS, run by one worker at a time (global concurrency 1)
  const probeQueue = new Queue(PROBE_QUEUE, { connection: queueConnection, prefix: cfg.redisPrefix });
  await probeQueue.setGlobalConcurrency(1);
  await probeQueue.upsertJobScheduler(
    'probe-unhealthy-channels',
    { every: cfg.channelProbeMs },
    { name: 'probe unhealthy channels', opts: { removeOnComplete: { count: 100 }, removeOnFail: { count: 100 } } },
  );
  const probeWorker = new Worker(PROBE_QUEUE, () => probeUnhealthyChannels(ctx), {
    connection: queueConnection,
    prefix: cfg.redisPrefix,
    concurrency: 1,
  });
  probeWorker.on('error', (err) => log.error({ err: { message: err.message } }, 'probe worker error'));
  probeWorker.on('failed', (_job, err) => log.error({ err: { message: err.message } }, 'channel probe failed'));

  const poll = setInterval(() => void syncWorkers().catch(() => undefined), CATALOG_POLL_MS);
  log.info({ concurrency: cfg.workerConcurrency }, 'worker started');

  stopOnSignal('worker', async () => {
    clearInterval(poll);
    clearInterval(responseSweep);
    sweeper.stop();
    // BullMQ takes no new job once close() is called and resolves once the running ones ended; meanwhile the
    // listener watch still cuts calls whose web process is gone
    const closed = Promise.all([...workers.values(), probeWorker].map((w) => w.close()));
    if (!(await within(closed, DRAIN_MS))) {
      const streams = [...running.values()].filter((run) => run.stream);
      log.warn(
        { running: running.size, cut: streams.length },
        'jobs still running after the drain time: streams cut, the rest left to re-runs',
      );
      for (const run of streams) abortJob(run.controller, 'shutdown');
      if (streams.length > 0) await within(Promise.all(streams.map((run) => run.done.catch(() => undefined))), SETTLE_MS);
    }
    listeners.stop();
    await Promise.all([queues.close(), probeQueue.close()]);
    await disconnect(connections);
    await flushTraces();
  });
});
