import type { ChatMessage, ResponsesRequest } from './request.js';

/**
 * Chat completion → OpenAI `response` object (SPEC §1b). The fields a Response echoes from its request
 * travel in the job as `ResponsesEcho`; the output items are built from the chat answer.
 */

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

/** What a Response repeats of its request, plus its ids; decided at the web, carried in the job. */
export interface ResponsesEcho {
  /** `resp_…`, derived from the request id, so a re-run job answers (and stores) under the same id */
  id: string;
  created_at: number;
  /** public model id */
  model: string;
  instructions: string | null;
  max_output_tokens: number | null;
  previous_response_id: string | null;
  store: boolean;
  temperature: number;
  top_p: number;
  tools: Json[];
  tool_choice: unknown;
  parallel_tool_calls: boolean;
  text: Json;
  reasoning: Json;
  metadata: Record<string, string>;
  user: string | null;
}

/** `req_<hex>` → `<hex>`, the stem of every id of this response and its items. */
const stemOf = (requestId: string) => requestId.replace(/^req_/, '');
export const responseIdFor = (requestId: string) => `resp_${stemOf(requestId)}`;

export const itemIds = (responseId: string) => {
  const stem = responseId.replace(/^resp_/, '');
  return { message: `msg_${stem}`, reasoning: `rs_${stem}`, call: (n: number) => `fc_${stem}_${n}` };
};

export function echoOf(body: ResponsesRequest, requestId: string, model: string, now = Date.now()): ResponsesEcho {
  return {
    id: responseIdFor(requestId),
    created_at: Math.floor(now / 1000),
    model,
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    previous_response_id: body.previous_response_id ?? null,
    store: body.store !== false,
    temperature: body.temperature ?? 1,
    top_p: body.top_p ?? 1,
    tools: (body.tools ?? []).map((tool) => ({ strict: true, ...tool, description: tool.description ?? null })),
    tool_choice: body.tool_choice ?? 'auto',
    parallel_tool_calls: body.parallel_tool_calls ?? true,
    text: { format: body.text?.format ?? { type: 'text' } },
    reasoning: { effort: body.reasoning?.effort ?? null, summary: null },
    metadata: body.metadata ?? {},
    user: body.user ?? null,
  };
}

export type ResponseStatus = 'in_progress' | 'completed' | 'incomplete';
/** A response's own status adds those of a stream cut before its end (an item's status never is one of them). */
export type ResponseObjectStatus = ResponseStatus | 'cancelled' | 'failed';

/** The response object around `output` (status in_progress: no usage yet). */
export function responseObject(
  echo: ResponsesEcho,
  status: ResponseObjectStatus,
  output: Json[],
  usage: Json | null,
  finishReason?: unknown,
  error: { code: 'server_error'; message: string } | null = null,
): Json {
  const incomplete =
    status === 'incomplete' ? { reason: finishReason === 'content_filter' ? 'content_filter' : 'max_output_tokens' } : null;
  return {
    id: echo.id,
    object: 'response',
    created_at: echo.created_at,
    status,
    ...(status === 'completed' && { completed_at: Math.floor(Date.now() / 1000) }),
    background: false,
    error,
    incomplete_details: incomplete,
    instructions: echo.instructions,
    max_output_tokens: echo.max_output_tokens,
    model: echo.model,
    output,
    parallel_tool_calls: echo.parallel_tool_calls,
    previous_response_id: echo.previous_response_id,
    reasoning: echo.reasoning,
    service_tier: 'default',
    store: echo.store,
    temperature: echo.temperature,
    text: echo.text,
    tool_choice: echo.tool_choice,
    tools: echo.tools,
    top_p: echo.top_p,
    truncation: 'disabled',
    ...(usage !== null && { usage }),
    ...(echo.user !== null && { user: echo.user }),
    metadata: echo.metadata,
  };
}

/** The status a chat finish_reason gives a response. */
export const statusOf = (finishReason: unknown): ResponseStatus =>
  finishReason === 'length' || finishReason === 'content_filter' ? 'incomplete' : 'completed';

const count = (value: unknown) => (typeof value === 'number' && Number.isFinite(value) ? value : 0);

/** Chat usage (as the worker shows it: details and `cost` filled in) → Responses usage, `cost` kept. */
export function responsesUsage(usage: Json): Json {
  const prompt = isObject(usage.prompt_tokens_details) ? usage.prompt_tokens_details : {};
  const completion = isObject(usage.completion_tokens_details) ? usage.completion_tokens_details : {};
  const input = count(usage.prompt_tokens);
  const output = count(usage.completion_tokens);
  return {
    input_tokens: input,
    input_tokens_details: { cached_tokens: count(prompt.cached_tokens), cache_write_tokens: count(prompt.cache_write_tokens) },
    output_tokens: output,
    output_tokens_details: { reasoning_tokens: count(completion.reasoning_tokens) },
    total_tokens: input + output,
    ...(usage.cost !== undefined && { cost: usage.cost }),
  };
}

export const outputText = (text: string): Json => ({ type: 'output_text', text, annotations: [], logprobs: [] });

export const messageItem = (id: string, status: string, content: Json[]): Json => ({
  type: 'message',
  id,
  status,
  role: 'assistant',
  content,
});

export const reasoningItem = (id: string, status: string, text: string | undefined): Json => ({
  type: 'reasoning',
  id,
  summary: [],
  ...(text !== undefined && { content: [{ type: 'reasoning_text', text }] }),
  status,
});

export const functionCallItem = (id: string, status: string, callId: string, name: string, args: string): Json => ({
  type: 'function_call',
  id,
  call_id: callId,
  name,
  arguments: args,
  status,
});

/** Reasoning text as OpenAI-compatible upstreams put it in a message or a delta (DeepSeek, DashScope: reasoning_content). */
export const reasoningTextOf = (message: Json): string | undefined => {
  const text = message.reasoning_content ?? message.reasoning;
  return typeof text === 'string' && text !== '' ? text : undefined;
};

/** The output items of a chat answer's first choice: reasoning, the assistant message, then one item per tool call. */
export function outputItems(responseId: string, message: Json): Json[] {
  const ids = itemIds(responseId);
  const items: Json[] = [];
  const reasoning = reasoningTextOf(message);
  if (reasoning !== undefined) items.push(reasoningItem(ids.reasoning, 'completed', reasoning));
  const text = typeof message.content === 'string' ? message.content : '';
  if (text !== '') items.push(messageItem(ids.message, 'completed', [outputText(text)]));
  else if (typeof message.refusal === 'string') {
    items.push(messageItem(ids.message, 'completed', [{ type: 'refusal', refusal: message.refusal }]));
  }
  const calls = Array.isArray(message.tool_calls) ? message.tool_calls.filter(isObject) : [];
  for (const [n, call] of calls.entries()) {
    const fn = isObject(call.function) ? call.function : {};
    items.push(functionCallItem(ids.call(n), 'completed', String(call.id ?? ''), String(fn.name ?? ''), String(fn.arguments ?? '')));
  }
  return items;
}

/** A whole non-stream chat completion (usage already the client's, with cost) → the response object. */
export function responseFromCompletion(echo: ResponsesEcho, completion: Json): Json {
  const choice = Array.isArray(completion.choices) && isObject(completion.choices[0]) ? completion.choices[0] : {};
  const message = isObject(choice.message) ? choice.message : {};
  const usage = isObject(completion.usage) ? responsesUsage(completion.usage) : null;
  const status = statusOf(choice.finish_reason);
  const output = outputItems(echo.id, message);
  const cut = output.at(-1);
  if (status === 'incomplete' && cut) cut.status = 'incomplete'; // as OpenAI marks the item the limit cut
  return responseObject(echo, status, output, usage, choice.finish_reason);
}

/** The assistant's turn as a chat message, for the stored conversation (what the next turn sends upstream). */
export function assistantMessage(output: Json[]): ChatMessage | undefined {
  let content = '';
  const toolCalls: Json[] = [];
  for (const item of output) {
    if (item.type === 'message' && Array.isArray(item.content)) {
      for (const part of item.content as Json[]) if (typeof part.text === 'string') content += part.text;
    } else if (item.type === 'function_call' && item.status !== 'incomplete') {
      // an incomplete call (cut by a limit or a failure) may hold half its JSON, and no tool output answers it
      toolCalls.push({ id: item.call_id, type: 'function', function: { name: item.name, arguments: item.arguments } });
    }
  }
  if (content === '' && toolCalls.length === 0) return undefined;
  return { role: 'assistant', content: content === '' ? null : content, ...(toolCalls.length > 0 && { tool_calls: toolCalls }) };
}
