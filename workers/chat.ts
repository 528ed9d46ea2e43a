import type { Job } from 'bullmq';
import type { ChatJobData } from '../src/queue/jobs.js';
import type { RelayPublisher } from '../src/queue/worker-relay.js';
import type { ChatChunk, TokenUsage } from '../src/upstream/providers/types.js';
import { clientUsage, producedTextOf, producedTextOfChoices, takePromptUsage } from './chat-usage.js';
import type { WorkerContext } from './context.js';
import { chargeChat, chargeCutShort, type JobSummary, runJob } from './job-kit.js';
import { processMessages } from './messages.js';
import { processResponses } from './responses.js';
import { withUpstream } from './upstream-call.js';

async function completeChat(ctx: WorkerContext, job: ChatJobData, relay: RelayPublisher, signal: AbortSignal): Promise<JobSummary> {
  const response = await withUpstream(ctx, job, signal, (adapter, call) => adapter.chat({ ...job.body, model: call.upstreamModel }, call));
  const { usage, cost, summary } = await chargeChat(ctx, job, job.body, response.usage, () => producedTextOfChoices(response.choices));
  response.model = job.model;
  response.usage = clientUsage(response.usage, usage, cost);
  await relay.send({ t: 'done', costNano: cost.toString(), result: response });
  return summary;
}

async function streamChat(ctx: WorkerContext, job: ChatJobData, relay: RelayPublisher, signal: AbortSignal): Promise<JobSummary> {
  let sent = 0;
  let produced = '';
  let upstreamUsage: TokenUsage | undefined;
  let reportedPrompt: TokenUsage | undefined;
  let lastChunk: ChatChunk | undefined;
  // as OpenAI streams it: with include_usage every chunk before the usage chunk says `"usage": null`
  const clientAskedUsage = (job.body.stream_options as { include_usage?: unknown } | null | undefined)?.include_usage === true;

  const forward = async (chunk: ChatChunk) => {
    chunk.model = job.model;
    if (chunk.usage) upstreamUsage = chunk.usage;
    reportedPrompt ??= takePromptUsage(chunk);
    if (!chunk.choices || chunk.choices.length === 0) return;
    if (clientAskedUsage) chunk.usage = null;
    else delete chunk.usage;
    lastChunk = chunk;
    produced += producedTextOf(chunk);
    // a web process that went away is noticed by the worker's ListenerWatch, also while the upstream is silent
    await relay.send({ t: 'chunk', chunk });
    sent++;
  };

  try {
    await withUpstream(
      ctx,
      job,
      signal,
      async (adapter, call) => {
        for await (const chunk of adapter.chatStream({ ...job.body, model: call.upstreamModel }, call)) await forward(chunk);
      },
      () => sent === 0,
    );
  } catch (err) {
    await chargeCutShort(ctx, job, signal, { chatBody: job.body, produced, started: sent > 0, reportedPrompt });
    throw err;
  }

  const { usage, cost, summary } = await chargeChat(ctx, job, job.body, upstreamUsage, () => produced);
  const usageChunk = {
    id: lastChunk?.id,
    object: 'chat.completion.chunk',
    created: lastChunk?.created ?? Math.floor(Date.now() / 1000),
    model: job.model,
    choices: [],
    usage: clientUsage(upstreamUsage, usage, cost),
  };
  await relay.send({ t: 'done', costNano: cost.toString(), usageChunk });
  return summary;
}

/** One chat job: lease → adapter → relay → settle; a job of another wire format goes to its own processor. */
export function processChat(ctx: WorkerContext, bullJob: Job<ChatJobData>, signal: AbortSignal): Promise<JobSummary> {
  const job = bullJob.data;
  if (job.wire === 'messages') return processMessages(ctx, job, signal);
  if (job.wire === 'responses' && job.responses) return processResponses(ctx, job, job.responses, signal);
  return runJob(ctx, job, signal, (relay) => (job.stream ? streamChat(ctx, job, relay, signal) : completeChat(ctx, job, relay, signal)));
}
