import { z } from 'zod';
import { badRequest } from '../../http/errors.js';
import type { ReasoningParam } from '../../upstream/providers/types.js';

/**
 * OpenAI's Responses request (SPEC §1b) and its translation into a chat completions request, which every
 * channel type serves (the provider adapters translate chat for Anthropic and DashScope). Pure functions:
 * the web runs them at admission, so the hold is the chat body's worst case.
 */

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

const positiveInt = z.number().int().positive();

export const responsesRequestSchema = z.looseObject({
  model: z.string().min(1),
  input: z.union([z.string(), z.array(z.looseObject({}))]),
  instructions: z.string().nullish(),
  previous_response_id: z.string().min(1).nullish(),
  stream: z.boolean().nullish(),
  store: z.boolean().nullish(),
  max_output_tokens: positiveInt.nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  tools: z.array(z.looseObject({ type: z.string() })).nullish(),
  tool_choice: z.union([z.enum(['auto', 'none', 'required']), z.looseObject({ type: z.string() })]).nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  text: z.looseObject({ format: z.looseObject({ type: z.string() }).nullish() }).nullish(),
  reasoning: z.looseObject({ effort: z.string().nullish() }).nullish(),
  metadata: z.record(z.string(), z.string()).nullish(),
  user: z.string().nullish(),
  background: z.boolean().nullish(),
});

export type ResponsesRequest = z.infer<typeof responsesRequestSchema>;

/** A chat message, as the upstream body and the stored conversation carry it. */
export type ChatMessage = Json & { role: string };

/** Responses fields that have no chat equivalent here: 400 naming them rather than a silently different answer. */
const UNSUPPORTED_FIELDS = ['conversation', 'prompt'] as const;

/** 400s about the body alone: built-in tools, fields eastx cannot honour. */
export function checkResponsesRequest(body: ResponsesRequest): void {
  for (const [i, tool] of (body.tools ?? []).entries()) {
    if (tool.type !== 'function') {
      throw badRequest(
        `tools: the built-in tool ${JSON.stringify(tool.type)} (tools[${i}]) is not supported; only function tools are`,
        'tools',
      );
    }
    if (typeof tool.name !== 'string' || tool.name === '')
      throw badRequest(`tools: tools[${i}].name is required for a function tool`, 'tools');
  }
  const choice = body.tool_choice;
  if (isObject(choice) && choice.type !== 'function') {
    throw badRequest(`tool_choice: ${JSON.stringify(choice.type)} is not supported; use auto, none, required or a function`, 'tool_choice');
  }
  if (isObject(choice) && typeof choice.name !== 'string') throw badRequest('tool_choice: a function choice needs a name', 'tool_choice');
  if (body.background === true) throw badRequest('background: background responses are not supported', 'background');
  for (const field of UNSUPPORTED_FIELDS) if (body[field] != null) throw badRequest(`${field}: is not supported`, field);
  const format = body.text?.format;
  if (format && !['text', 'json_object', 'json_schema'].includes(format.type)) {
    throw badRequest(`text.format.type: must be text, json_object or json_schema`, 'text.format.type');
  }
  if (format?.type === 'json_schema' && (typeof format.name !== 'string' || !isObject(format.schema))) {
    throw badRequest('text.format: json_schema needs a name and a schema object', 'text.format');
  }
  inputMessages(body.input); // its 400s, before the model or the money
}

/** Text of a Responses content list (input_text, output_text, refusal parts) or of a string. */
function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  let text = '';
  for (const part of content) {
    if (!isObject(part)) continue;
    if (typeof part.text === 'string') text += part.text;
    else if (typeof part.refusal === 'string') text += part.refusal;
  }
  return text;
}

/** A user/system part of a Responses message → a chat content part. */
function chatPart(part: unknown, where: string): Json {
  if (!isObject(part)) throw badRequest(`input: ${where} must be an object`, 'input');
  switch (part.type) {
    case 'input_text':
    case 'output_text':
      if (typeof part.text !== 'string') throw badRequest(`input: ${where}.text must be a string`, 'input');
      return { type: 'text', text: part.text };
    case 'input_image': {
      if (typeof part.image_url !== 'string') throw badRequest(`input: ${where}.image_url is required (file_id is not supported)`, 'input');
      const detail = typeof part.detail === 'string' ? { detail: part.detail } : {};
      return { type: 'image_url', image_url: { url: part.image_url, ...detail } };
    }
    default:
      throw badRequest(`input: ${where}.type ${JSON.stringify(part.type)} is not supported`, 'input');
  }
}

const ROLES: Record<string, string> = { user: 'user', assistant: 'assistant', system: 'system', developer: 'system' };

function messageOf(item: Json, where: string): ChatMessage {
  const role = typeof item.role === 'string' ? ROLES[item.role] : undefined;
  if (!role) throw badRequest(`input: ${where}.role must be user, assistant, system or developer`, 'input');
  const { content } = item;
  if (typeof content === 'string') return { role, content };
  if (!Array.isArray(content)) throw badRequest(`input: ${where}.content must be a string or a list of parts`, 'input');
  if (role === 'assistant') return { role, content: textOf(content) };
  return { role, content: content.map((part, j) => chatPart(part, `${where}.content[${j}]`)) };
}

const argumentsOf = (value: unknown) => (typeof value === 'string' ? value : JSON.stringify(value ?? {}));

/**
 * Responses input → chat messages: messages keep their role (developer → system), consecutive
 * `function_call` items become one assistant message's `tool_calls` (joined to the assistant text just
 * before them), `function_call_output` items become `tool` messages; reasoning items are not sent back.
 */
export function inputMessages(input: ResponsesRequest['input']): ChatMessage[] {
  if (typeof input === 'string') return [{ role: 'user', content: input }];
  const messages: ChatMessage[] = [];
  for (const [i, item] of input.entries()) {
    const where = `input[${i}]`;
    const type = item.type ?? 'message';
    if (type === 'message') {
      messages.push(messageOf(item, where));
    } else if (type === 'function_call') {
      if (typeof item.call_id !== 'string' || typeof item.name !== 'string') {
        throw badRequest(`input: ${where} (function_call) needs call_id and name`, 'input');
      }
      const call = { id: item.call_id, type: 'function', function: { name: item.name, arguments: argumentsOf(item.arguments) } };
      const last = messages.at(-1);
      if (last?.role !== 'assistant') messages.push({ role: 'assistant', content: null, tool_calls: [call] });
      else if (Array.isArray(last.tool_calls)) last.tool_calls.push(call);
      else last.tool_calls = [call];
    } else if (type === 'function_call_output') {
      if (typeof item.call_id !== 'string') throw badRequest(`input: ${where} (function_call_output) needs call_id`, 'input');
      messages.push({
        role: 'tool',
        tool_call_id: item.call_id,
        content: typeof item.output === 'string' ? item.output : textOf(item.output),
      });
    } else if (type !== 'reasoning') {
      throw badRequest(`input: ${where}.type ${JSON.stringify(type)} is not supported`, 'input');
    }
  }
  if (messages.length === 0) throw badRequest('input: must contain at least one message', 'input');
  return messages;
}

function chatTools(tools: ResponsesRequest['tools']): Json[] | undefined {
  if (!tools?.length) return undefined;
  return tools.map(({ name, description, parameters, strict }) => ({
    type: 'function',
    function: {
      name,
      ...(description != null && { description }),
      parameters: parameters ?? { type: 'object', properties: {} },
      ...(typeof strict === 'boolean' && { strict }),
    },
  }));
}

function chatToolChoice(choice: ResponsesRequest['tool_choice']): unknown {
  if (choice == null || typeof choice === 'string') return choice ?? undefined;
  return { type: 'function', function: { name: choice.name } };
}

function chatResponseFormat(format: Json | null | undefined): Json | undefined {
  if (!format || format.type === 'text') return undefined;
  if (format.type === 'json_object') return { type: 'json_object' };
  const { name, schema, strict, description } = format;
  return {
    type: 'json_schema',
    json_schema: { name, schema, ...(strict != null && { strict }), ...(description != null && { description }) },
  };
}

/**
 * The chat body one attempt sends, with `reasoning.effort` in the upstream's own setting (SPEC §1b: "where
 * the upstream has it"): OpenAI-type upstreams take `reasoning_effort`; DashScope `enable_thinking`, on
 * streams only (it refuses thinking in non-streaming calls; `none`/`minimal` turn it off); the Anthropic
 * adapter has no chat-side setting, so it gets neither.
 */
export function withReasoningParam(chat: Json, param: ReasoningParam, stream: boolean): Json {
  const { reasoning_effort: effort, ...rest } = chat;
  if (effort === undefined || param === 'reasoning_effort') return chat;
  if (param !== 'enable_thinking') return rest;
  const enabled = effort !== 'none' && effort !== 'minimal';
  if (!enabled) return { ...rest, enable_thinking: false };
  return stream ? { ...rest, enable_thinking: true } : rest;
}

/**
 * The chat completions body for a Responses request: `prior` (the stored conversation of
 * previous_response_id; its instructions are not carried over) + this input, with this request's
 * instructions as the system message first. `max_tokens` is left to admission when absent.
 */
export function toChatRequest(body: ResponsesRequest, prior: ChatMessage[] = []): { chat: Json; conversation: ChatMessage[] } {
  const conversation = [...prior, ...inputMessages(body.input)];
  const messages = body.instructions ? [{ role: 'system', content: body.instructions }, ...conversation] : conversation;
  const chat: Json = { model: body.model, messages };
  const set = (key: string, value: unknown) => {
    if (value !== undefined && value !== null) chat[key] = value;
  };
  set('max_tokens', body.max_output_tokens);
  set('temperature', body.temperature);
  set('top_p', body.top_p);
  set('tools', chatTools(body.tools));
  set('tool_choice', chatToolChoice(body.tool_choice));
  if (body.tools?.length) set('parallel_tool_calls', body.parallel_tool_calls);
  set('response_format', chatResponseFormat(body.text?.format));
  set('reasoning_effort', body.reasoning?.effort);
  set('user', body.user);
  return { chat, conversation };
}
