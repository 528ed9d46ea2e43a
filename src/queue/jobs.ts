import type { WireError } from '../http/errors.js';

/** One BullMQ queue per channel keeps a slow or cooling provider from blocking the others. */
export const channelQueueName = (channelId: number) => `channel-${channelId}`;

export type JobKind = 'chat' | 'embeddings' | 'images';

/** Money as decimal strings: job data is JSON. Never secrets: workers read tokens from the catalog. */
export interface JobPrices {
  inputMicro: string;
  outputMicro: string;
  imageNano: string;
}

export interface JobBase {
  requestId: string;
  /** The web process whose relay channel gets this job's messages. */
  webId: string;
  userId: number;
  keyId: number;
  /** public model id (ledger, responses) */
  model: string;
  channelId: number;
  upstreamModel: string;
  prices: JobPrices;
  holdNano: string;
  /** epoch ms after which the upstream call is abandoned with upstream_timeout */
  deadlineAt: number;
}

export interface ChatJobData extends JobBase {
  kind: 'chat';
  stream: boolean;
  includeUsage: boolean;
  /** The OpenAI-shaped request to send upstream (model already the upstream name). */
  body: Record<string, unknown>;
}

export interface EmbeddingsJobData extends JobBase {
  kind: 'embeddings';
  body: Record<string, unknown>;
  encodingFormat: 'float' | 'base64';
}

export interface ImagesJobData extends JobBase {
  kind: 'images';
  prompt: string;
  n: number;
  size: string;
  extra: Record<string, unknown>;
}

export type JobData = ChatJobData | EmbeddingsJobData | ImagesJobData;

/** Worker → web messages on the relay channel; `seq` counts from 0 per job run, so gaps and restarts show. */
export type RelayMessage =
  | { id: string; seq: number; t: 'chunk'; chunk: unknown }
  | { id: string; seq: number; t: 'done'; costNano: string; result?: unknown; usageChunk?: unknown }
  | { id: string; seq: number; t: 'error'; error: WireError };

/** A job's final message: its answer (or usage chunk) and cost, or its error. */
export type FinalMessage = Extract<RelayMessage, { t: 'done' | 'error' }>;

/**
 * "Still running": sent by a worker while a job has published nothing for a couple of seconds, so the web
 * side does not take a job that BullMQ lost track of (Redis restarted) for a dead one. Outside the sequence.
 */
export interface RelayHeartbeat {
  id: string;
  t: 'hb';
}

export type RelayFrame = RelayMessage | RelayHeartbeat;

/**
 * How long Bull Board keeps finished jobs (seconds, and at most `count` per queue): long enough for an
 * operator to look into a problem, short enough that prompts in job data do not pile up in Redis.
 * A completed job's return value summarises tokens and cost; a failed one's reason is the SPEC §2 message.
 */
export const JOB_RETENTION = {
  removeOnComplete: { age: 3600, count: 2000 },
  removeOnFail: { age: 24 * 3600, count: 5000 },
};
