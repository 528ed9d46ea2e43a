/**
 * Chat jobs whose client speaks Anthropic's Messages API (SPEC §1b). The route's channel decides, per
 * attempt: an Anthropic upstream gets the body as is and its answer or events come back as they are (model
 * name set to the public id); other upstreams get it translated to a chat request (src/wire/messages/) and
 * their answer or chunks are translated back. Billing, settlement and failover are chat's.
 */
import { usdNumber } from '../src/billing/money.js';
import type { SseEvent } from '../src/http/sse.js';
import type { ChatJobData } from '../src/queue/jobs.js';
import type { RelayPublisher } from '../src/queue/worker-relay.js';
import { type AnthropicUsage, usageOf } from '../src/upstream/providers/anthropic/response.js';
import { mergeUsage } from '../src/upstream/providers/anthropic/stream.js';
import type { ChatChunk, Json, Provider, ProviderAdapter, TokenUsage, UpstreamCall } from '../src/upstream/providers/types.js';
import { countMessagesTokens } from '../src/wire/messages/count.js';
import { promptAsChat, toChatRequest } from '../src/wire/messages/request.js';
import { anthropicUsageOf, refusalTextOf, toAnthropicMessage } from '../src/wire/messages/response.js';
import { eventOf, MessagesStreamTranslator } from '../src/wire/messages/stream.js';
import { producedTextOf } from './chat-usage.js';
import type { WorkerContext } from './context.js';
import { chargeChat, chargeCutShort, type JobSummary, runJob } from './job-kit.js';
import { withUpstream } from './upstream-call.js';

const native = (provider: Provider, adapter: ProviderAdapter) => provider.capabilities.messages && adapter.messages !== undefined;

/** The chat request a translated attempt sends: thinking as this provider's reasoning setting, its upstream model. */
const chatBodyFor = (job: ChatJobData, provider: Provider, call: UpstreamCall) => ({
  ...toChatRequest(job.body, provider.capabilities.reasoning),
  model: call.upstreamModel,
});

/** Messages answers bill like chat: their prompt counted as its chat translation when the upstream reports no usage. */
const chargeMessages = (ctx: WorkerContext, job: ChatJobData, upstream: TokenUsage | undefined, produced: () => string) =>
  chargeChat(ctx, job, promptAsChat(job.body), upstream, produced);

async function completeMessages(ctx: WorkerContext, job: ChatJobData, relay: RelayPublisher, signal: AbortSignal): Promise<JobSummary> {
  const answer = await withUpstream(ctx, job, signal, async (adapter, call, provider) => {
    if (native(provider, adapter)) return { message: await adapter.messages!(job.body, call, job.anthropic ?? {}) };
    return { completion: await adapter.chat(chatBodyFor(job, provider, call), call) };
  });
  if (answer.message) {
    const { message } = answer;
    const upstream = message.usage as AnthropicUsage | undefined;
    const { usage, cost, summary } = await chargeMessages(ctx, job, upstream && usageOf(upstream), () =>
      JSON.stringify(message.content ?? ''),
    );
    const result = { ...message, model: job.model, usage: { ...(upstream ?? anthropicUsageOf(usage)), cost: usdNumber(cost) } };
    await relay.send({ t: 'done', costNano: cost.toString(), result });
    return summary;
  }
  const { completion } = answer;
  const { usage, cost, summary } = await chargeMessages(ctx, job, completion.usage, () => JSON.stringify(completion.choices ?? ''));
  const result = toAnthropicMessage(completion, job.model, anthropicUsageOf(usage, usdNumber(cost)));
  await relay.send({ t: 'done', costNano: cost.toString(), result });
  return summary;
}

/** Text of an Anthropic stream event's delta, for counting what was produced. */
function producedOfEvent(data: Json): string {
  const delta = data.delta as { text?: unknown; partial_json?: unknown; thinking?: unknown } | undefined;
  if (data.type !== 'content_block_delta' || !delta) return '';
  return [delta.text, delta.partial_json, delta.thinking].filter((x): x is string => typeof x === 'string').join('');
}

/** What one streamed attempt leaves for the end: the upstream's usage and the closing events for the billed usage. */
interface StreamEnd {
  usage: TokenUsage | undefined;
  closing(usage: Json): SseEvent[];
}

/** A stream's relay: events out as chunks, counted, and what they produced. */
class EventSender {
  sent = 0;
  produced = '';
  /** The prompt's usage as an Anthropic upstream reported it in message_start, for billing a stream cut short. */
  reportedPrompt: TokenUsage | undefined;
  constructor(private readonly relay: RelayPublisher) {}

  async send(events: SseEvent[], produced = ''): Promise<void> {
    this.produced += produced;
    for (const { event, data } of events) {
      await this.relay.send({ t: 'chunk', event, chunk: data });
      this.sent++;
    }
  }
}

/**
 * An Anthropic upstream's events as they come, with two holds: message_start (and pings) wait for the first
 * content event, so an overload reported right after it may still go to another token; message_delta and
 * message_stop wait for the settlement, to go out in the done frame with the cost.
 */
async function relayNativeStream(
  job: ChatJobData,
  events: AsyncIterable<{ event: string; data: Json }>,
  out: EventSender,
): Promise<StreamEnd> {
  let usage: AnthropicUsage | undefined;
  let delta: Json | undefined;
  const pending: SseEvent[] = [];
  for await (const { event, data } of events) {
    if (data.type === 'message_start') {
      const message = (data.message ?? {}) as Json;
      usage = mergeUsage(undefined, message.usage as AnthropicUsage | undefined);
      out.reportedPrompt = usage && usageOf(usage);
      pending.push({ event, data: { ...data, message: { ...message, model: job.model } } });
    } else if (data.type === 'message_delta') {
      usage = mergeUsage(usage, data.usage as AnthropicUsage | undefined);
      delta = data;
    } else if (data.type === 'ping' && out.sent === 0) {
      pending.push({ event, data });
    } else if (data.type !== 'message_stop') {
      await out.send([...pending.splice(0), { event, data }], producedOfEvent(data));
    }
  }
  await out.send(pending.splice(0));
  return {
    usage: usage && usageOf(usage),
    closing: (billed) => [
      eventOf({
        ...(delta ?? { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null } }),
        type: 'message_delta',
        usage: { ...(delta?.usage as Json), ...billed },
      }),
      eventOf({ type: 'message_stop' }),
    ],
  };
}

/** An OpenAI-type upstream's chunks translated to Anthropic's events. */
async function relayTranslatedStream(job: ChatJobData, chunks: AsyncIterable<ChatChunk>, out: EventSender): Promise<StreamEnd> {
  const translator = new MessagesStreamTranslator(job.model);
  let usage: TokenUsage | undefined;
  for await (const chunk of chunks) {
    if (chunk.usage) usage = chunk.usage;
    // a refusal is output too (billed by the estimate when the upstream reports no usage)
    await out.send(translator.push(chunk), producedTextOf(chunk) + refusalTextOf(chunk.choices?.[0]?.delta as Json | undefined));
  }
  await out.send(translator.finish());
  return { usage, closing: (billed) => translator.closing(billed) };
}

async function streamMessages(ctx: WorkerContext, job: ChatJobData, relay: RelayPublisher, signal: AbortSignal): Promise<JobSummary> {
  const out = new EventSender(relay);
  let end: StreamEnd;
  try {
    end = await withUpstream(
      ctx,
      job,
      signal,
      (adapter, call, provider) =>
        native(provider, adapter)
          ? relayNativeStream(job, adapter.messagesStream!(job.body, call, job.anthropic ?? {}), out)
          : relayTranslatedStream(job, adapter.chatStream(chatBodyFor(job, provider, call), call), out),
      () => out.sent === 0,
    );
  } catch (err) {
    await chargeCutShort(ctx, job, signal, {
      chatBody: promptAsChat(job.body),
      produced: out.produced,
      started: out.sent > 0,
      reportedPrompt: out.reportedPrompt,
    });
    throw err;
  }
  const { usage, cost, summary } = await chargeMessages(ctx, job, end.usage, () => out.produced);
  const events = end.closing(anthropicUsageOf(usage, usdNumber(cost)));
  await relay.send({ t: 'done', costNano: cost.toString(), events });
  return summary;
}

/**
 * count_tokens: the Anthropic upstream's count where the route's channel is Anthropic, else the gateway's
 * own (src/wire/messages/count.ts). Nothing was held; nothing is billed.
 */
async function countTokens(ctx: WorkerContext, job: ChatJobData, relay: RelayPublisher, signal: AbortSignal): Promise<JobSummary> {
  const inputTokens = await withUpstream(ctx, job, signal, (adapter, call, provider) =>
    provider.capabilities.messages && adapter.countMessageTokens
      ? adapter.countMessageTokens(job.body, call, job.anthropic ?? {})
      : Promise.resolve(countMessagesTokens(job.body)),
  );
  await relay.send({ t: 'done', costNano: '0', result: { input_tokens: inputTokens } });
  return { status: 'ok', promptTokens: inputTokens, completionTokens: 0, costNano: '0', estimated: false };
}

export function processMessages(ctx: WorkerContext, job: ChatJobData, signal: AbortSignal): Promise<JobSummary> {
  return runJob(ctx, job, signal, (relay) => {
    if (job.countTokens) return countTokens(ctx, job, relay, signal);
    return job.stream ? streamMessages(ctx, job, relay, signal) : completeMessages(ctx, job, relay, signal);
  });
}
