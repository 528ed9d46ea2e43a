/** Anthropic Messages API (`POST /v1/messages`), non-streaming and streaming (named SSE events). */
import {
  asArray,
  asInt,
  asString,
  type Ctx,
  eventFrame,
  headerValue,
  isObject,
  type JsonObject,
  playSse,
  randomId,
  type SseFrame,
  sendJson,
} from './http.js';
import type { ErrorOptions, Provider, Route } from './route.js';
import { countTokens, fragments, planReply, type ReplyPlan, textPieces } from './text.js';

// ---------------------------------------------------------------- errors

const ERROR_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  500: 'api_error',
  529: 'overloaded_error',
};

function errorType(status: number): string {
  return ERROR_TYPES[status] ?? (status >= 500 ? 'api_error' : 'invalid_request_error');
}

export const anthropicProvider: Provider = {
  name: 'anthropic',
  secretOf: (req) => headerValue(req, 'x-api-key'),
  missingKeyMessage: 'x-api-key header is required',
  sendError(ctx: Ctx, status: number, message: string, opts: ErrorOptions = {}) {
    const body = { type: 'error', error: { type: opts.type ?? errorType(status), message }, request_id: `req_${randomId('', 24)}` };
    sendJson(ctx, status, body, opts.headers);
  },
};

// ---------------------------------------------------------------- request reading

/** Text of a content value: a string, or blocks of which text (and tool_result text) counts. */
function blocksText(content: unknown): string {
  if (typeof content === 'string') return content;
  return asArray(content)
    .filter(isObject)
    .map((block) => {
      if (block.type === 'text') return asString(block.text) ?? '';
      if (block.type === 'tool_result') return blocksText(block.content);
      if (block.type === 'tool_use') return JSON.stringify(block.input ?? {});
      return '';
    })
    .filter((text) => text !== '')
    .join(' ');
}

/** Text blocks only (a user turn's own words, without tool results). */
function userText(content: unknown): string {
  if (typeof content === 'string') return content;
  return blocksText(asArray(content).filter((block) => isObject(block) && block.type === 'text'));
}

function toolResultOf(message: JsonObject | undefined): string | undefined {
  if (message?.role !== 'user') return undefined;
  const results = asArray(message.content).filter((b): b is JsonObject => isObject(b) && b.type === 'tool_result');
  const last = results.at(-1);
  return last ? blocksText(last.content) : undefined;
}

function toolToCall(body: JsonObject, last: JsonObject | undefined): string | undefined {
  const tools = asArray(body.tools).filter(isObject);
  const choice = isObject(body.tool_choice) ? body.tool_choice : {};
  if (tools.length === 0 || choice.type === 'none' || last?.role !== 'user' || toolResultOf(last) !== undefined) return undefined;
  if (choice.type === 'tool' && typeof choice.name === 'string') return choice.name;
  return asString(tools[0]?.name) ?? 'tool';
}

function planMessage(ctx: Ctx, body: JsonObject, messages: JsonObject[], maxTokens: number): ReplyPlan {
  const last = messages.at(-1);
  const lastUser = [...messages].reverse().find((m) => m.role === 'user' && toolResultOf(m) === undefined);
  return planReply(
    {
      lastUserText: userText(lastUser?.content),
      toolResult: toolResultOf(last),
      toolName: toolToCall(body, last),
      maxTokens,
      stopSequences: asArray(body.stop_sequences).filter((s): s is string => typeof s === 'string'),
      reply: ctx.behavior.reply,
    },
    'toolu_01',
  );
}

function inputTokens(body: JsonObject, messages: JsonObject[]): number {
  const texts = [blocksText(body.system), ...messages.map((m) => blocksText(m.content))].filter((t) => t !== '');
  return countTokens(texts.join('\n'));
}

// ---------------------------------------------------------------- responses

const STOP_REASON = { stop: 'end_turn', length: 'max_tokens', stop_sequence: 'stop_sequence' } as const;

function stopReason(plan: ReplyPlan): string {
  return plan.kind === 'tool' ? 'tool_use' : STOP_REASON[plan.finish];
}

function contentBlock(plan: ReplyPlan): JsonObject {
  if (plan.kind === 'text') return { type: 'text', text: plan.text };
  return { type: 'tool_use', id: plan.id, name: plan.name, input: JSON.parse(plan.arguments) as unknown };
}

interface MessageMeta {
  id: string;
  model: string;
  inputTokens: number;
}

function usage(input: number, output: number): JsonObject {
  return { input_tokens: input, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: output };
}

function sendMessage(ctx: Ctx, meta: MessageMeta, plan: ReplyPlan): void {
  sendJson(ctx, 200, {
    id: meta.id,
    type: 'message',
    role: 'assistant',
    model: meta.model,
    content: [contentBlock(plan)],
    stop_reason: stopReason(plan),
    stop_sequence: plan.kind === 'text' ? (plan.stopSequence ?? null) : null,
    ...(ctx.behavior.omitUsage ? {} : { usage: usage(meta.inputTokens, plan.outputTokens) }),
  });
}

function blockStart(plan: ReplyPlan): JsonObject {
  if (plan.kind === 'text') return { type: 'text', text: '' };
  return { type: 'tool_use', id: plan.id, name: plan.name, input: {} };
}

function blockDeltas(plan: ReplyPlan): JsonObject[] {
  if (plan.kind === 'text') return textPieces(plan.text).map((text) => ({ type: 'text_delta', text }));
  return fragments(plan.arguments).map((partial_json) => ({ type: 'input_json_delta', partial_json }));
}

function streamFrames(meta: MessageMeta, plan: ReplyPlan, withUsage: boolean): SseFrame[] {
  const message = {
    id: meta.id,
    type: 'message',
    role: 'assistant',
    model: meta.model,
    content: [],
    stop_reason: null,
    stop_sequence: null,
    ...(withUsage ? { usage: usage(meta.inputTokens, 1) } : {}),
  };
  const stopSequence = plan.kind === 'text' ? (plan.stopSequence ?? null) : null;
  return [
    eventFrame('message_start', { type: 'message_start', message }),
    eventFrame('content_block_start', { type: 'content_block_start', index: 0, content_block: blockStart(plan) }),
    eventFrame('ping', { type: 'ping' }),
    ...blockDeltas(plan).map((delta) => eventFrame('content_block_delta', { type: 'content_block_delta', index: 0, delta }, true)),
    eventFrame('content_block_stop', { type: 'content_block_stop', index: 0 }),
    eventFrame('message_delta', {
      type: 'message_delta',
      delta: { stop_reason: stopReason(plan), stop_sequence: stopSequence },
      ...(withUsage ? { usage: { output_tokens: plan.outputTokens } } : {}),
    }),
    eventFrame('message_stop', { type: 'message_stop' }),
  ];
}

const STREAM_ERROR_FRAME = eventFrame('error', { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }).text;

// ---------------------------------------------------------------- handler

async function messagesHandler(ctx: Ctx, body: unknown): Promise<void> {
  const fail = (message: string): void => anthropicProvider.sendError(ctx, 400, message);
  if (!isObject(body)) return fail('messages: request body must be a JSON object');
  const model = asString(body.model);
  if (model === undefined) return fail('model: Field required');
  const maxTokens = asInt(body.max_tokens);
  if (body.max_tokens === undefined) return fail('max_tokens: Field required');
  if (maxTokens === undefined || maxTokens < 1) return fail('max_tokens: Input should be a valid integer greater than or equal to 1');
  if (!Array.isArray(body.messages) || body.messages.length === 0) return fail('messages: at least one message is required');
  const messages = body.messages.filter(isObject);
  const plan = planMessage(ctx, body, messages, maxTokens);
  const meta: MessageMeta = { id: randomId('msg_01', 22), model, inputTokens: inputTokens(body, messages) };
  if (body.stream !== true) return sendMessage(ctx, meta, plan);
  await playSse(ctx, streamFrames(meta, plan, !ctx.behavior.omitUsage), {
    chunkDelayMs: ctx.behavior.chunkDelayMs,
    resetAfter: ctx.behavior.midStreamResetAfter,
    errorFrame: ctx.behavior.midStreamError ? STREAM_ERROR_FRAME : undefined,
  });
}

function requireVersion(ctx: Ctx): boolean {
  if (headerValue(ctx.req, 'anthropic-version') !== '') return true;
  anthropicProvider.sendError(ctx, 400, 'anthropic-version: header is required');
  return false;
}

export const anthropicRoutes: Route[] = [
  { method: 'POST', pattern: /^\/v1\/messages$/, provider: anthropicProvider, precheck: requireVersion, handle: messagesHandler },
];
