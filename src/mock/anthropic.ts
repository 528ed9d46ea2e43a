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
import { type CacheUse, NO_CACHE, type PromptCache } from './prompt-cache.js';
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

/** Names of the tools the conversation already called. */
function calledTools(messages: JsonObject[]): Set<unknown> {
  const names = new Set<unknown>();
  for (const m of messages) for (const block of asArray(m.content)) if (isObject(block) && block.type === 'tool_use') names.add(block.name);
  return names;
}

/**
 * The tool the mock model calls: the named one (tool_choice tool), else the first one, when the last turn is
 * the user's. After a tool result it answers in text, unless tool_choice `any` obliges it to call a tool:
 * then it calls the first one not called yet in the conversation (the last one if all were).
 */
function toolToCall(body: JsonObject, messages: JsonObject[]): JsonObject | undefined {
  const last = messages.at(-1);
  const tools = asArray(body.tools).filter(isObject);
  const choice = isObject(body.tool_choice) ? body.tool_choice : {};
  if (tools.length === 0 || choice.type === 'none' || last?.role !== 'user') return undefined;
  if (toolResultOf(last) !== undefined) {
    if (choice.type !== 'any') return undefined;
    const called = calledTools(messages);
    return tools.find((tool) => !called.has(tool.name)) ?? tools.at(-1);
  }
  if (choice.type === 'tool' && typeof choice.name === 'string') {
    return tools.find((tool) => tool.name === choice.name) ?? { name: choice.name };
  }
  return tools[0];
}

function planMessage(ctx: Ctx, body: JsonObject, messages: JsonObject[], maxTokens: number): ReplyPlan {
  const last = messages.at(-1);
  const lastUser = [...messages].reverse().find((m) => m.role === 'user' && toolResultOf(m) === undefined);
  const tool = toolToCall(body, messages);
  return planReply(
    {
      lastUserText: userText(lastUser?.content),
      toolResult: toolResultOf(last),
      toolName: tool && (asString(tool.name) ?? 'tool'),
      toolParameters: tool?.input_schema,
      maxTokens,
      stopSequences: asArray(body.stop_sequences).filter((s): s is string => typeof s === 'string'),
      reply: ctx.behavior.reply,
      emptyToolInput: ctx.behavior.emptyToolInput,
    },
    'toolu_01',
  );
}

/** The prompt's text as the mock counts it: system, then every message. */
function promptText(system: unknown, messages: JsonObject[]): string {
  return [blocksText(system), ...messages.map((m) => blocksText(m.content))].filter((t) => t !== '').join('\n');
}

const marked = (block: unknown) => isObject(block) && isObject(block.cache_control);

/**
 * Prompt caching: the prefix up to and including the last block carrying `cache_control` (tools, then
 * system, then messages, as Anthropic orders the prompt) is read from the mock's cache when a request of this
 * credential and model cached it before, else written to it. Only system and message text counts as tokens.
 */
function cacheUse(ctx: Ctx, cache: PromptCache, body: JsonObject, messages: JsonObject[], model: string): CacheUse {
  const tools = asArray(body.tools);
  const system = asArray(body.system);
  let prefix: string | undefined;
  for (let i = messages.length - 1; i >= 0 && prefix === undefined; i--) {
    const blocks = asArray(messages[i].content);
    const at = blocks.findLastIndex(marked);
    if (at >= 0) prefix = promptText(body.system, [...messages.slice(0, i), { ...messages[i], content: blocks.slice(0, at + 1) }]);
  }
  if (prefix === undefined && system.some(marked)) prefix = promptText(system.slice(0, system.findLastIndex(marked) + 1), []);
  if (prefix === undefined && tools.some(marked)) prefix = '';
  if (prefix === undefined) return NO_CACHE;
  const scope = `${ctx.secret}\0${model}\0${JSON.stringify(tools.slice(0, tools.findLastIndex(marked) + 1))}`;
  return cache.anthropic(scope, prefix, countTokens(prefix));
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
  /** every prompt token, cached ones included */
  inputTokens: number;
  cache: CacheUse;
  /** `thinking` enabled: the answer starts with this thinking block (its tokens are output tokens) */
  thinking?: string;
}

/** The mock's thinking, when a request enables it. */
const THINKING_TEXT = 'The user asked something; a short, direct answer fits.';
const THINKING_SIGNATURE = 'mock-signature';

const thinkingOf = (body: JsonObject): string | undefined =>
  isObject(body.thinking) && body.thinking.type === 'enabled' ? THINKING_TEXT : undefined;

const outputTokens = (meta: MessageMeta, plan: ReplyPlan) => plan.outputTokens + (meta.thinking ? countTokens(meta.thinking) : 0);

/** Anthropic's usage: input_tokens are the prompt tokens neither read from nor written to the cache. */
function usage(meta: MessageMeta, output: number): JsonObject {
  const cached = Math.min(meta.cache.read + meta.cache.written, meta.inputTokens);
  const read = Math.min(meta.cache.read, cached);
  return {
    input_tokens: meta.inputTokens - cached,
    cache_creation_input_tokens: cached - read,
    cache_read_input_tokens: read,
    output_tokens: output,
  };
}

function sendMessage(ctx: Ctx, meta: MessageMeta, plan: ReplyPlan): void {
  sendJson(ctx, 200, {
    id: meta.id,
    type: 'message',
    role: 'assistant',
    model: meta.model,
    content: [...(meta.thinking ? [{ type: 'thinking', thinking: meta.thinking, signature: THINKING_SIGNATURE }] : []), contentBlock(plan)],
    stop_reason: stopReason(plan),
    stop_sequence: plan.kind === 'text' ? (plan.stopSequence ?? null) : null,
    ...(ctx.behavior.omitUsage ? {} : { usage: usage(meta, outputTokens(meta, plan)) }),
  });
}

function blockStart(plan: ReplyPlan): JsonObject {
  if (plan.kind === 'text') return { type: 'text', text: '' };
  return { type: 'tool_use', id: plan.id, name: plan.name, input: {} };
}

function blockDeltas(plan: ReplyPlan): JsonObject[] {
  if (plan.kind === 'text') return textPieces(plan.text).map((text) => ({ type: 'text_delta', text }));
  // Claude streams an empty input as one empty fragment
  if (plan.arguments === '{}') return [{ type: 'input_json_delta', partial_json: '' }];
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
    ...(withUsage ? { usage: usage(meta, 1) } : {}),
  };
  const stopSequence = plan.kind === 'text' ? (plan.stopSequence ?? null) : null;
  const index = meta.thinking ? 1 : 0;
  const blocks = [
    ...(meta.thinking
      ? [
          eventFrame('content_block_start', {
            type: 'content_block_start',
            index: 0,
            content_block: { type: 'thinking', thinking: '', signature: '' },
          }),
          ...textPieces(meta.thinking).map((piece) =>
            eventFrame(
              'content_block_delta',
              { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: piece } },
              true,
            ),
          ),
          eventFrame('content_block_delta', {
            type: 'content_block_delta',
            index: 0,
            delta: { type: 'signature_delta', signature: THINKING_SIGNATURE },
          }),
          eventFrame('content_block_stop', { type: 'content_block_stop', index: 0 }),
        ]
      : []),
    eventFrame('content_block_start', { type: 'content_block_start', index, content_block: blockStart(plan) }),
    ...blockDeltas(plan).map((delta) => eventFrame('content_block_delta', { type: 'content_block_delta', index, delta }, true)),
    eventFrame('content_block_stop', { type: 'content_block_stop', index }),
  ];
  return [
    eventFrame('message_start', { type: 'message_start', message }),
    // as Anthropic orders it: the first block's start, then a ping
    blocks[0],
    eventFrame('ping', { type: 'ping' }),
    ...blocks.slice(1),
    eventFrame('message_delta', {
      type: 'message_delta',
      delta: { stop_reason: stopReason(plan), stop_sequence: stopSequence },
      ...(withUsage ? { usage: { output_tokens: outputTokens(meta, plan) } } : {}),
    }),
    eventFrame('message_stop', { type: 'message_stop' }),
  ];
}

const STREAM_ERROR_FRAME = eventFrame('error', { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }).text;

// ---------------------------------------------------------------- handler

const messagesHandler =
  (cache: PromptCache) =>
  async (ctx: Ctx, body: unknown): Promise<void> => {
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
    const meta: MessageMeta = {
      id: randomId('msg_01', 22),
      model,
      inputTokens: countTokens(promptText(body.system, messages)),
      cache: cacheUse(ctx, cache, body, messages, model),
      thinking: thinkingOf(body),
    };
    if (body.stream !== true) return sendMessage(ctx, meta, plan);
    await playSse(ctx, streamFrames(meta, plan, !ctx.behavior.omitUsage), {
      chunkDelayMs: ctx.behavior.chunkDelayMs,
      resetAfter: ctx.behavior.midStreamResetAfter,
      errorFrame: ctx.behavior.midStreamError ? STREAM_ERROR_FRAME : undefined,
    });
  };

function requireVersion(ctx: Ctx): boolean {
  if (headerValue(ctx.req, 'anthropic-version') !== '') return true;
  anthropicProvider.sendError(ctx, 400, 'anthropic-version: header is required');
  return false;
}

/** `POST /v1/messages/count_tokens`: the prompt's tokens as the mock counts them for /v1/messages. */
async function countTokensHandler(ctx: Ctx, body: unknown): Promise<void> {
  if (!isObject(body) || asString(body.model) === undefined) return anthropicProvider.sendError(ctx, 400, 'model: Field required');
  if (!Array.isArray(body.messages) || body.messages.length === 0)
    return anthropicProvider.sendError(ctx, 400, 'messages: at least one message is required');
  if (body.max_tokens !== undefined || body.stream !== undefined)
    return anthropicProvider.sendError(
      ctx,
      400,
      `${body.max_tokens !== undefined ? 'max_tokens' : 'stream'}: Extra inputs are not permitted`,
    );
  sendJson(ctx, 200, { input_tokens: countTokens(promptText(body.system, body.messages.filter(isObject))) });
}

export const anthropicRoutes = (cache: PromptCache): Route[] => [
  { method: 'POST', pattern: /^\/v1\/messages$/, provider: anthropicProvider, precheck: requireVersion, handle: messagesHandler(cache) },
  {
    method: 'POST',
    pattern: /^\/v1\/messages\/count_tokens$/,
    provider: anthropicProvider,
    precheck: requireVersion,
    handle: countTokensHandler,
  },
];
