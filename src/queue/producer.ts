import { Queue } from 'bullmq';
import type { Redis } from '../redis/index.js';
import { channelQueueName, JOB_RETENTION, type JobData } from './jobs.js';

/** The web side of the queues: one BullMQ Queue per channel, created on first use. */
export class JobProducer {
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
  async add(data: JobData): Promise<void> {
    await this.queue(data.channelId).add(`${data.kind} ${data.model}`, data, { jobId: data.requestId, attempts: 1, ...JOB_RETENTION });
  }

  all(): Queue[] {
    return [...this.queues.values()];
  }

  async close(): Promise<void> {
    await Promise.all(this.all().map((q) => q.close()));
  }
}
