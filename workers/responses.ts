import { log } from '../src/log.js';
import { abortReasonOf } from '../src/queue/abort.js';
import type { ChatJobData, ResponsesJob } from '../src/queue/jobs.js';
import type { RelayPublisher } from '../src/queue/worker-relay.js';
import type { Provider, TokenUsage, UpstreamCall } from '../src/upstream/providers/types.js';
import { type ChatMessage, withReasoningParam } from '../src/wire/responses/request.js';
import { assistantMessage, responseFromCompletion } from '../src/wire/responses/response.js';
import { storeResponse } from '../src/wire/responses/store.js';
import { ResponsesStreamEncoder } from '../src/wire/responses/stream.js';
import { clientUsage, producedTextOf, producedTextOfChoices, takePromptUsage } from './chat-usage.js';
import type { WorkerContext } from './context.js';
import { asApiError, chargeChat, chargeCutShort, type JobSummary, runJob } from './job-kit.js';
import { withUpstream } from './upstream-call.js';

/**
 * A chat job whose client speaks OpenAI's Responses API (SPEC §1b). The web translated the request to chat;
 * this answers the chat completion as a response object, or its stream as Responses events, and keeps the
 * response (store: true) once the request is billed: a stream cut after it was billed for part of an answer
 * is kept `cancelled` (its client left) or `failed`.
 */

/**
 * Keeps the billed response for previous_response_id and GET (SPEC §1b). After settlement, once per request
 * (only a charge that applied gets here; the row's id is the response id, inserted with IGNORE). A store
 * that fails does not take the answer away: it is logged and the response is simply not retrievable.
 */
async function keep(ctx: WorkerContext, job: ChatJobData, meta: ResponsesJob, response: Record<string, unknown>): Promise<void> {
  if (!meta.echo.store) return;
  const messages = job.body.messages as ChatMessage[];
  const answer = assistantMessage(response.output as Array<Record<string, unknown>>);
  const conversation = [...messages.slice(meta.conversationFrom), ...(answer ? [answer] : [])];
  await storeResponse(ctx.db, { id: meta.echo.id, userId: job.userId, keyId: job.keyId, model: job.model, conversation, response }).catch(
    (err: unknown) => log.error({ requestId: job.requestId, err: { message: (err as Error).message } }, 'could not store a response'),
  );
}

/** The translated chat body for one attempt: the route's upstream model name and its reasoning setting. */
const attemptBody = (job: ChatJobData, call: UpstreamCall, provider: Provider) =>
  withReasoningParam({ ...job.body, model: call.upstreamModel }, provider.capabilities.reasoning, job.stream);

async function completeResponse(
  ctx: WorkerContext,
  job: ChatJobData,
  meta: ResponsesJob,
  relay: RelayPublisher,
  signal: AbortSignal,
): Promise<JobSummary> {
  const completion = await withUpstream(ctx, job, signal, (adapter, call, provider) =>
    adapter.chat(attemptBody(job, call, provider), call),
  );
  const { usage, cost, summary } = await chargeChat(ctx, job, job.body, completion.usage, () => producedTextOfChoices(completion.choices));
  const response = responseFromCompletion(meta.echo, { ...completion, usage: clientUsage(completion.usage, usage, cost) });
  await keep(ctx, job, meta, response);
  await relay.send({ t: 'done', costNano: cost.toString(), result: response });
  return summary;
}

async function streamResponse(
  ctx: WorkerContext,
  job: ChatJobData,
  meta: ResponsesJob,
  relay: RelayPublisher,
  signal: AbortSignal,
): Promise<JobSummary> {
  const encoder = new ResponsesStreamEncoder(meta.echo);
  let produced = '';
  let upstreamUsage: TokenUsage | undefined;
  let reportedPrompt: TokenUsage | undefined;
  try {
    await withUpstream(
      ctx,
      job,
      signal,
      async (adapter, call, provider) => {
        for await (const chunk of adapter.chatStream(attemptBody(job, call, provider), call)) {
          if (chunk.usage) upstreamUsage = chunk.usage;
          reportedPrompt ??= takePromptUsage(chunk);
          produced += producedTextOf(chunk);
          for (const { event, data } of encoder.push(chunk)) await relay.send({ t: 'chunk', event, chunk: data });
        }
      },
      () => encoder.emitted === 0,
    );
  } catch (err) {
    const billed = await chargeCutShort(ctx, job, signal, {
      chatBody: job.body,
      produced,
      started: encoder.emitted > 0,
      reportedPrompt,
    });
    if (billed) {
      const failure = abortReasonOf(signal) === 'cancelled' ? null : asApiError(err, signal).message;
      await keep(ctx, job, meta, encoder.cut(clientUsage(upstreamUsage, billed.usage, billed.cost), failure));
    }
    throw err;
  }
  const { usage, cost, summary } = await chargeChat(ctx, job, job.body, upstreamUsage, () => produced);
  const { events, response } = encoder.finish(clientUsage(upstreamUsage, usage, cost));
  await keep(ctx, job, meta, response);
  await relay.send({ t: 'done', costNano: cost.toString(), events });
  return summary;
}

export function processResponses(ctx: WorkerContext, job: ChatJobData, meta: ResponsesJob, signal: AbortSignal): Promise<JobSummary> {
  return runJob(ctx, job, signal, (relay) =>
    job.stream ? streamResponse(ctx, job, meta, relay, signal) : completeResponse(ctx, job, meta, relay, signal),
  );
}
