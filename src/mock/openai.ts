/**
 * OpenAI-shaped chat completions and embeddings. Also serves DashScope's OpenAI-compatible
 * mode (`/compatible-mode/v1/...`), which differs only in error extras and embeddings encoding.
 */
import { randomUUID } from 'node:crypto';
import {
  asArray,
  asInt,
  asString,
  bearerToken,
  type Ctx,
  dataFrame,
  isObject,
  type JsonObject,
  playSse,
  randomId,
  type SseFrame,
  sendJson,
} from './http.js';
import type { PromptCache } from './prompt-cache.js';
import type { ErrorOptions, Provider, Route } from './route.js';
import {
  countTokens,
  EMBEDDING_DIMENSIONS,
  embeddingVector,
  float32Base64,
  fragments,
  planReply,
  type ReplyPlan,
  textPieces,
} from './text.js';

type Flavor = 'openai' | 'dashscope';

// ---------------------------------------------------------------- errors

function errorTypeFor(status: number): { type: string; code: string | null } {
  if (status === 401) return { type: 'invalid_request_error', code: 'invalid_api_key' };
  if (status === 429) return { type: 'requests', code: 'rate_limit_exceeded' };
  if (status >= 500) return { type: 'server_error', code: null };
  return { type: 'invalid_request_error', code: null };
}

function makeProvider(flavor: Flavor): Provider {
  return {
    name: flavor,
    secretOf: bearerToken,
    missingKeyMessage:
      "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
    sendError(ctx: Ctx, status: number, message: string, opts: ErrorOptions = {}) {
      const derived = errorTypeFor(status);
      const error = { message, type: opts.type ?? derived.type, param: null, code: derived.code };
      const body = flavor === 'dashscope' ? { error, request_id: randomUUID() } : { error };
      sendJson(ctx, status, body, opts.headers);
    },
  };
}

export const openaiProvider = makeProvider('openai');
export const dashscopeCompatProvider = makeProvider('dashscope');

// ---------------------------------------------------------------- request reading

/** Text of a message `content`: a string, or an array of parts of which only `text` parts count. */
function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  return asArray(content)
    .filter(isObject)
    .filter((part) => part.type === 'text')
    .map((part) => asString(part.text) ?? '')
    .join(' ');
}

function toolToCall(body: JsonObject, lastRole: string | undefined): { name: string; parameters?: unknown } | undefined {
  const tools = asArray(body.tools).filter(isObject);
  const choice = body.tool_choice;
  if (tools.length === 0 || choice === 'none' || lastRole !== 'user') return undefined;
  const functions = tools.map((tool) => (isObject(tool.function) ? tool.function : {}));
  const named = isObject(choice) && isObject(choice.function) ? asString(choice.function.name) : undefined;
  const fn = named !== undefined ? functions.find((f) => f.name === named) : functions[0];
  return { name: named ?? asString(fn?.name) ?? 'tool', parameters: fn?.parameters };
}

/** `response_format` json_object / json_schema: the answer is JSON (fitting the schema when one is given). */
function jsonFormatOf(body: JsonObject): { schema?: unknown } | undefined {
  const format = isObject(body.response_format) ? body.response_format : undefined;
  if (format?.type === 'json_object') return {};
  if (format?.type !== 'json_schema') return undefined;
  const spec = isObject(format.json_schema) ? format.json_schema : {};
  return { schema: isObject(spec.schema) ? spec.schema : { type: 'object' } };
}

function stopList(stop: unknown): string[] {
  if (typeof stop === 'string') return [stop];
  return asArray(stop).filter((s): s is string => typeof s === 'string');
}

function planChat(ctx: Ctx, body: JsonObject, messages: JsonObject[]): ReplyPlan {
  const last = messages.at(-1);
  const lastRole = asString(last?.role);
  const lastUser = [...messages].reverse().find((m) => m.role === 'user');
  const { refusal } = ctx.behavior;
  const tool = refusal === undefined ? toolToCall(body, lastRole) : undefined;
  return planReply(
    {
      lastUserText: contentText(lastUser?.content),
      toolResult: lastRole === 'tool' ? contentText(last?.content) : undefined,
      toolName: tool?.name,
      toolParameters: tool?.parameters,
      json: jsonFormatOf(body),
      maxTokens: asInt(body.max_completion_tokens) ?? asInt(body.max_tokens),
      stopSequences: stopList(body.stop),
      reply: refusal ?? ctx.behavior.reply,
      emptyToolInput: ctx.behavior.emptyToolInput,
    },
    'call_',
  );
}

// ---------------------------------------------------------------- chat completions

const FINISH_REASON = { stop: 'stop', stop_sequence: 'stop', length: 'length' } as const;

function finishReason(plan: ReplyPlan): string {
  return plan.kind === 'tool' ? 'tool_calls' : FINISH_REASON[plan.finish];
}

/**
 * A request asking for reasoning (OpenAI's `reasoning_effort`, DashScope's `enable_thinking`) gets this as
 * `reasoning_content` before the answer, as DeepSeek- and Qwen-style OpenAI-compatible upstreams send it.
 */
const REASONING_TEXT = 'Thinking it over: a short, direct answer fits.';
const reasoningOf = (body: JsonObject): string | undefined =>
  typeof body.reasoning_effort === 'string' || body.enable_thinking === true ? REASONING_TEXT : undefined;

/** OpenAI's usage, details included (cached prompt tokens from the mock's prompt cache; reasoning is output). */
function usageOf(meta: ChatMeta, plan: ReplyPlan): JsonObject {
  const reasoning = meta.reasoning ? countTokens(meta.reasoning) : 0;
  const completion = plan.outputTokens * (plan.kind === 'tool' ? meta.toolCalls : 1) + reasoning;
  return {
    prompt_tokens: meta.promptTokens,
    completion_tokens: completion,
    total_tokens: meta.promptTokens + completion,
    prompt_tokens_details: { cached_tokens: meta.cachedTokens, audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: reasoning,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
  };
}

type ToolPlan = Extract<ReplyPlan, { kind: 'tool' }>;

/** The calls a tool plan makes: one, or Behavior.interleavedToolCalls of the same call (ids suffixed after the first). */
const toolCallsOf = (meta: ChatMeta, plan: ToolPlan) =>
  Array.from({ length: meta.toolCalls }, (_, i) => ({
    id: i === 0 ? plan.id : `${plan.id}_${i}`,
    name: plan.name,
    arguments: plan.arguments,
  }));

function completionMessage(meta: ChatMeta, plan: ReplyPlan): JsonObject {
  const reasoning = meta.reasoning ? { reasoning_content: meta.reasoning } : {};
  if (plan.kind === 'text' && meta.refusal) return { role: 'assistant', content: null, refusal: plan.text, ...reasoning };
  if (plan.kind === 'text') return { role: 'assistant', content: plan.text, refusal: null, ...reasoning };
  return {
    role: 'assistant',
    content: null,
    refusal: null,
    ...reasoning,
    tool_calls: toolCallsOf(meta, plan).map((call) => ({
      id: call.id,
      type: 'function',
      function: { name: call.name, arguments: call.arguments },
    })),
  };
}

interface ChatMeta {
  id: string;
  created: number;
  model: string;
  promptTokens: number;
  /** of promptTokens, served from the prompt cache */
  cachedTokens: number;
  /** reasoning text sent before the answer, when the request asked for reasoning */
  reasoning?: string | undefined;
  /** the text plan is a refusal (Behavior.refusal) */
  refusal: boolean;
  /** Behavior.toolCallsWithoutIndex */
  toolCallsWithoutIndex: boolean;
  /** how many times a tool plan's call is made (Behavior.interleavedToolCalls, else 1) */
  toolCalls: number;
}

function sendCompletion(ctx: Ctx, meta: ChatMeta, plan: ReplyPlan): void {
  sendJson(ctx, 200, {
    id: meta.id,
    object: 'chat.completion',
    created: meta.created,
    model: meta.model,
    system_fingerprint: 'fp_mock',
    choices: [{ index: 0, message: completionMessage(meta, plan), logprobs: null, finish_reason: finishReason(plan) }],
    ...(ctx.behavior.omitUsage ? {} : { usage: usageOf(meta, plan) }),
  });
}

/** A call's `index`, unless the upstream imitated sends none (Behavior.toolCallsWithoutIndex). */
const indexOf = (meta: ChatMeta, index: number): JsonObject => (meta.toolCallsWithoutIndex ? {} : { index });

const toolCallHeader = (meta: ChatMeta, index: number, call: { id: string; name: string }): JsonObject => ({
  ...indexOf(meta, index),
  id: call.id,
  type: 'function',
  function: { name: call.name, arguments: '' },
});

/**
 * Deltas after the opening one: content (or refusal) pieces, or tool-call argument fragments; with several
 * calls, the other calls' headers, then every call's fragments in turn.
 */
function contentDeltas(meta: ChatMeta, plan: ReplyPlan): JsonObject[] {
  if (plan.kind === 'text') return textPieces(plan.text).map((piece) => (meta.refusal ? { refusal: piece } : { content: piece }));
  const calls = toolCallsOf(meta, plan);
  const headers = calls.slice(1).map((call, i) => ({ tool_calls: [toolCallHeader(meta, i + 1, call)] }));
  const pieces = fragments(plan.arguments);
  const inTurn = pieces.flatMap((args) =>
    calls.map((_, index) => ({ tool_calls: [{ ...indexOf(meta, index), function: { arguments: args } }] })),
  );
  return [...headers, ...inTurn];
}

function openingDelta(meta: ChatMeta, plan: ReplyPlan): JsonObject {
  if (plan.kind === 'text') return { role: 'assistant', content: meta.refusal ? null : '', refusal: meta.refusal ? '' : null };
  return { role: 'assistant', content: null, tool_calls: [toolCallHeader(meta, 0, plan)] };
}

function streamFrames(meta: ChatMeta, plan: ReplyPlan, includeUsage: boolean): SseFrame[] {
  const base = { id: meta.id, object: 'chat.completion.chunk', created: meta.created, model: meta.model, system_fingerprint: 'fp_mock' };
  const usageField = includeUsage ? { usage: null } : {};
  const chunk = (delta: JsonObject, finish: string | null): JsonObject => ({
    ...base,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    ...usageField,
  });
  const frames: SseFrame[] = [];
  if (meta.reasoning) {
    frames.push(dataFrame(chunk({ role: 'assistant', content: '' }, null)));
    for (const piece of textPieces(meta.reasoning)) frames.push(dataFrame(chunk({ reasoning_content: piece }, null), true));
  }
  frames.push(dataFrame(chunk(openingDelta(meta, plan), null)));
  for (const delta of contentDeltas(meta, plan)) frames.push(dataFrame(chunk(delta, null), true));
  frames.push(dataFrame(chunk({}, finishReason(plan))));
  if (includeUsage) frames.push(dataFrame({ ...base, choices: [], usage: usageOf(meta, plan) }));
  frames.push({ text: 'data: [DONE]\n\n', content: false });
  return frames;
}

const STREAM_ERROR_FRAME = `data: ${JSON.stringify({ error: { message: 'Overloaded', type: 'server_error', param: null, code: null } })}\n\n`;

function chatHandler(provider: Provider, cache: PromptCache) {
  return async (ctx: Ctx, body: unknown): Promise<void> => {
    if (!isObject(body)) return provider.sendError(ctx, 400, 'We could not parse the JSON body of your request.');
    const model = asString(body.model);
    if (model === undefined) return provider.sendError(ctx, 400, 'you must provide a model parameter');
    if (!Array.isArray(body.messages) || body.messages.length === 0) {
      return provider.sendError(ctx, 400, "'messages' is a required property and must be a non-empty array");
    }
    const messages = body.messages.filter(isObject);
    const plan = planChat(ctx, body, messages);
    const promptTokens = countTokens(messages.map((m) => contentText(m.content)).join('\n'));
    // automatic prompt caching: every message but the last is the prefix a later request may share
    const prefix = messages
      .slice(0, -1)
      .map((m) => contentText(m.content))
      .join('\n');
    const cached = cache.openai(`${ctx.secret}\0${model}`, prefix, countTokens(prefix)).read;
    const meta: ChatMeta = {
      id: `chatcmpl-${randomId('', 29)}`,
      created: Math.floor(Date.now() / 1000),
      model,
      promptTokens,
      cachedTokens: Math.min(cached, promptTokens),
      reasoning: reasoningOf(body),
      refusal: ctx.behavior.refusal !== undefined,
      toolCallsWithoutIndex: ctx.behavior.toolCallsWithoutIndex === true,
      toolCalls: ctx.behavior.interleavedToolCalls ?? 1,
    };
    if (body.stream !== true) return sendCompletion(ctx, meta, plan);
    const streamOptions = isObject(body.stream_options) ? body.stream_options : {};
    const includeUsage = streamOptions.include_usage === true && !ctx.behavior.omitUsage;
    await playSse(ctx, streamFrames(meta, plan, includeUsage), {
      chunkDelayMs: ctx.behavior.chunkDelayMs,
      resetAfter: ctx.behavior.midStreamResetAfter,
      errorFrame: ctx.behavior.midStreamError ? STREAM_ERROR_FRAME : undefined,
    });
  };
}

// ---------------------------------------------------------------- embeddings

/** `input` as a list of (hash key, token count); accepts string, string[], number[] and number[][]. */
function embeddingInputs(input: unknown): Array<{ key: string; tokens: number }> | undefined {
  const asItem = (item: unknown): { key: string; tokens: number } | undefined => {
    if (typeof item === 'string') return { key: item, tokens: countTokens(item) };
    if (Array.isArray(item) && item.length > 0 && item.every((t) => typeof t === 'number')) {
      return { key: `tokens:${item.join(',')}`, tokens: item.length };
    }
    return undefined;
  };
  if (typeof input === 'string') return [asItem(input)].filter((x) => x !== undefined);
  if (!Array.isArray(input) || input.length === 0) return undefined;
  if (input.every((t) => typeof t === 'number')) return [{ key: `tokens:${input.join(',')}`, tokens: input.length }];
  const items = input.map(asItem);
  return items.every((x) => x !== undefined) ? items : undefined;
}

function embeddingsHandler(provider: Provider, flavor: Flavor) {
  return (ctx: Ctx, body: unknown): void => {
    if (!isObject(body)) return provider.sendError(ctx, 400, 'We could not parse the JSON body of your request.');
    const model = asString(body.model);
    if (model === undefined) return provider.sendError(ctx, 400, 'you must provide a model parameter');
    const inputs = embeddingInputs(body.input);
    if (!inputs) return provider.sendError(ctx, 400, "'input' must be a non-empty string, array of strings, or array of token arrays");
    const dimensions = asInt(body.dimensions) ?? EMBEDDING_DIMENSIONS;
    if (dimensions < 1) return provider.sendError(ctx, 400, "'dimensions' must be at least 1");
    const base64 = flavor === 'openai' && body.encoding_format === 'base64';
    const data = inputs.map((item, index) => {
      const vector = embeddingVector(item.key, dimensions);
      return { object: 'embedding', index, embedding: base64 ? float32Base64(vector) : vector };
    });
    const promptTokens = inputs.reduce((sum, item) => sum + item.tokens, 0);
    sendJson(ctx, 200, {
      object: 'list',
      data,
      model,
      ...(ctx.behavior.omitUsage ? {} : { usage: { prompt_tokens: promptTokens, total_tokens: promptTokens } }),
      ...(flavor === 'dashscope' ? { id: randomUUID() } : {}),
    });
  };
}

// ---------------------------------------------------------------- routes

export const openaiRoutes = (cache: PromptCache): Route[] => [
  { method: 'POST', pattern: /^\/v1\/chat\/completions$/, provider: openaiProvider, handle: chatHandler(openaiProvider, cache) },
  { method: 'POST', pattern: /^\/v1\/embeddings$/, provider: openaiProvider, handle: embeddingsHandler(openaiProvider, 'openai') },
];

export const dashscopeCompatRoutes = (cache: PromptCache): Route[] => [
  {
    method: 'POST',
    pattern: /^\/compatible-mode\/v1\/chat\/completions$/,
    provider: dashscopeCompatProvider,
    handle: chatHandler(dashscopeCompatProvider, cache),
  },
  {
    method: 'POST',
    pattern: /^\/compatible-mode\/v1\/embeddings$/,
    provider: dashscopeCompatProvider,
    handle: embeddingsHandler(dashscopeCompatProvider, 'dashscope'),
  },
];
