import { Queue } from 'bullmq';
import type { Redis } from '../redis/index.js';
import { channelQueueName, type JobData, retentionFor } from './jobs.js';

/** States in which a job will still run or answer. */
const LIVE_STATES = new Set(['waiting', 'active', 'delayed', 'prioritized', 'waiting-children']);

/** The channel queues as the web side (adding jobs) and the sweepers (asking after them) see them. */
export class ChannelQueues {
  private readonly queues = new Map<number, Queue>();

  constructor(
    private readonly connection: Redis,
    private readonly prefix: string,
  ) {}

  queue(channelId: number): Queue {
    let queue = this.queues.get(channelId);
    if (!queue) {
      queue = new Queue(channelQueueName(channelId), { connection: this.connection, prefix: this.prefix });
      this.queues.set(channelId, queue);
    }
    return queue;
  }

  /** Job id = request id = ledger idempotency key. Attempts 1: a stalled job is re-run by BullMQ, never retried blindly. */
  async add(data: JobData, bodyBytes: number): Promise<void> {
    await this.queue(data.channelId).add(`${data.kind} ${data.model}`, data, {
      jobId: data.requestId,
      attempts: 1,
      ...retentionFor(bodyBytes),
    });
  }

  /** Whether BullMQ still has the job queued or running (false once it ended, or when it was lost). */
  async isLive(channelId: number, requestId: string): Promise<boolean> {
    return LIVE_STATES.has(await this.queue(channelId).getJobState(requestId));
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
  }
}
