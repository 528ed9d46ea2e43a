/** OpenAI chat request → Anthropic Messages API request. Pure functions, no I/O. */
import { jsonResponseToolOf, jsonToolChoice, withoutDialect } from './structured.js';

export type Json = Record<string, unknown>;
type Block = Json;
interface Turn {
  role: 'user' | 'assistant';
  content: Block[];
}

/** Used only when a request reaches the adapter without one (the API normally always sets max_tokens). */
export const DEFAULT_MAX_TOKENS = 4096;

/** Image media types the Messages API accepts in base64 blocks. */
export const IMAGE_MEDIA_TYPES = ['image/jpeg', 'image/png', 'image/gif', 'image/webp'];

const DATA_URL = /^data:([^;,]+)((?:;[^;,]*)*);base64,(.*)$/is;

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);
const asArray = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);

export function parseDataUrl(url: string): { mediaType: string; data: string } | undefined {
  const match = DATA_URL.exec(url);
  return match ? { mediaType: match[1].toLowerCase(), data: match[3] } : undefined;
}

export function imageUrlOf(part: Json): string | undefined {
  const image = part.image_url;
  if (typeof image === 'string') return image;
  return isObject(image) && typeof image.url === 'string' ? image.url : undefined;
}

/**
 * `cache_control` (Anthropic's prompt-caching breakpoint, e.g. `{"type":"ephemeral"}`) as OpenAI clients put
 * it on a content part, a message or a tool: copied onto the Anthropic block it becomes.
 */
function cached(block: Block, source: Json | undefined): Block {
  return source && isObject(source.cache_control) ? { ...block, cache_control: source.cache_control } : block;
}

/** A message-level cache_control marks the end of that message: its last block. */
function cacheLast(blocks: Block[], message: Json): Block[] {
  if (!isObject(message.cache_control) || blocks.length === 0) return blocks;
  return [...blocks.slice(0, -1), cached(blocks[blocks.length - 1], message)];
}

const partsOf = (content: unknown): Json[] => asArray(content).filter(isObject);
/** The cache_control of any part of a content value, for translations that merge the parts into one block. */
const partCache = (content: unknown): Json | undefined => partsOf(content).findLast((part) => isObject(part.cache_control));

function imageBlock(url: string): Block {
  const inline = parseDataUrl(url);
  if (inline) return { type: 'image', source: { type: 'base64', media_type: inline.mediaType, data: inline.data } };
  return { type: 'image', source: { type: 'url', url } };
}

/** Text of a content value (string or parts); non-text parts are skipped. */
export function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  return asArray(content)
    .filter(isObject)
    .map((part) => (typeof part.text === 'string' ? part.text : typeof part.refusal === 'string' ? part.refusal : ''))
    .join('');
}

/** A user (or system) content value as text and image blocks, each part's cache_control kept. */
function contentBlocks(content: unknown): Block[] {
  if (typeof content === 'string') return [{ type: 'text', text: content }];
  const blocks: Block[] = [];
  for (const part of partsOf(content)) {
    if (part.type === 'image_url') {
      const url = imageUrlOf(part);
      if (url) blocks.push(cached(imageBlock(url), part));
    } else if (typeof part.text === 'string') {
      blocks.push(cached({ type: 'text', text: part.text }, part));
    } else if (typeof part.refusal === 'string') {
      blocks.push(cached({ type: 'text', text: part.refusal }, part));
    }
  }
  return blocks;
}

/** Tool-call arguments (a JSON string in OpenAI's format) as the object Anthropic wants in `input`. */
export function parseArguments(raw: unknown): Json | undefined {
  if (isObject(raw)) return raw;
  if (typeof raw !== 'string' || raw.trim() === '') return {};
  try {
    const parsed: unknown = JSON.parse(raw);
    return isObject(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

function toolUse(id: string, fn: unknown): Block {
  const call = isObject(fn) ? fn : {};
  return { type: 'tool_use', id, name: String(call.name ?? ''), input: parseArguments(call.arguments) ?? {} };
}

function toolResult(toolUseId: string, message: Json): Block {
  const text = typeof message.content === 'string' ? message.content : textOf(message.content);
  return cached({ type: 'tool_result', tool_use_id: toolUseId, content: text }, partCache(message.content) ?? message);
}

/** Legacy `function_call`s carry no id; the matching `function` message is found by name, oldest first. */
class LegacyCallIds {
  #next = 0;
  #pending: Array<{ id: string; name: string }> = [];

  issue(name: string): string {
    const id = `call_legacy_${this.#next++}`;
    this.#pending.push({ id, name });
    return id;
  }

  claim(name: unknown): string {
    const at = this.#pending.findIndex((call) => call.name === name);
    const [call] = this.#pending.splice(Math.max(at, 0), 1);
    return call?.id ?? this.issue(String(name ?? ''));
  }
}

function turnOf(message: Json, legacy: LegacyCallIds): Turn | undefined {
  switch (message.role) {
    case 'user':
      return { role: 'user', content: cacheLast(contentBlocks(message.content), message) };
    case 'assistant': {
      const content: Block[] = [cached({ type: 'text', text: textOf(message.content) }, partCache(message.content))];
      for (const call of asArray(message.tool_calls).filter(isObject)) content.push(toolUse(String(call.id ?? ''), call.function));
      if (isObject(message.function_call))
        content.push(toolUse(legacy.issue(String(message.function_call.name ?? '')), message.function_call));
      return { role: 'assistant', content: cacheLast(content, message) };
    }
    case 'tool':
      return { role: 'user', content: [toolResult(String(message.tool_call_id ?? ''), message)] };
    case 'function':
      return { role: 'user', content: [toolResult(legacy.claim(message.name), message)] };
    default:
      return undefined;
  }
}

const isEmptyText = (block: Block) => block.type === 'text' && block.text === '';

/**
 * Anthropic wants strictly alternating user/assistant turns with non-empty content, tool results first in
 * their user turn, and no trailing whitespace at the end of a final (prefilled) assistant turn.
 */
function mergeTurns(turns: Turn[]): Turn[] {
  const merged: Turn[] = [];
  for (const turn of turns) {
    const content = turn.content.filter((block) => !isEmptyText(block));
    if (content.length === 0) continue;
    const last = merged.at(-1);
    if (last?.role === turn.role) last.content.push(...content);
    else merged.push({ role: turn.role, content });
  }
  for (const turn of merged) {
    if (turn.role === 'user') {
      turn.content = [...turn.content.filter((b) => b.type === 'tool_result'), ...turn.content.filter((b) => b.type !== 'tool_result')];
    }
  }
  const final = merged.at(-1);
  const tail = final?.role === 'assistant' ? final.content.at(-1) : undefined;
  if (tail?.type === 'text') tail.text = String(tail.text).trimEnd();
  if (tail && isEmptyText(tail)) final!.content.pop();
  if (final && final.content.length === 0) merged.pop();
  return merged;
}

/** The client's tools (and legacy functions); a cache_control on the tool or its function marks the tool. */
function toolsOf(body: Json): Json[] {
  const fromTools = asArray(body.tools)
    .filter(isObject)
    .filter((tool) => tool.type === 'function' && isObject(tool.function))
    .map((tool) => ({ fn: tool.function as Json, marks: [tool, tool.function as Json] }));
  const definitions = [
    ...fromTools,
    ...asArray(body.functions)
      .filter(isObject)
      .map((fn) => ({ fn, marks: [fn] })),
  ];
  return definitions.map(({ fn, marks }) =>
    cached(
      {
        name: fn.name,
        ...(typeof fn.description === 'string' ? { description: fn.description } : {}),
        input_schema: isObject(fn.parameters) ? withoutDialect(fn.parameters) : { type: 'object', properties: {} },
      },
      marks.find((mark) => isObject(mark.cache_control)),
    ),
  );
}

function namedChoice(value: Json): string | undefined {
  if (isObject(value.function) && typeof value.function.name === 'string') return value.function.name;
  return typeof value.name === 'string' ? value.name : undefined;
}

function toolChoiceOf(body: Json): Json | undefined {
  const legacy = body.tool_choice === undefined || body.tool_choice === null;
  const choice = legacy ? body.function_call : body.tool_choice;
  let mapped: Json | undefined;
  if (choice === 'auto') mapped = { type: 'auto' };
  else if (choice === 'none') return { type: 'none' };
  else if (choice === 'required') mapped = { type: 'any' };
  else if (isObject(choice) && namedChoice(choice)) mapped = { type: 'tool', name: namedChoice(choice) };
  // Legacy function calling answers with at most one call; parallel_tool_calls:false asks for the same.
  const single = body.parallel_tool_calls === false || (asArray(body.tools).length === 0 && asArray(body.functions).length > 0);
  if (!single) return mapped;
  return { ...(mapped ?? { type: 'auto' }), disable_parallel_tool_use: true };
}

function stopSequencesOf(stop: unknown): string[] | undefined {
  const list = (typeof stop === 'string' ? [stop] : asArray(stop)).filter((s): s is string => typeof s === 'string' && s !== '');
  return list.length > 0 ? list : undefined;
}

function sampling(body: Json): Json {
  const out: Json = {};
  // OpenAI's temperature runs 0..2, Anthropic's 0..1; newer Claude models also refuse temperature and top_p together.
  if (typeof body.temperature === 'number') out.temperature = Math.min(1, Math.max(0, body.temperature));
  else if (typeof body.top_p === 'number') out.top_p = body.top_p;
  if (typeof body.top_k === 'number') out.top_k = body.top_k;
  return out;
}

const isTextPart = (part: Json) => typeof part.text === 'string' || typeof part.refusal === 'string';

/** The Messages API body for an OpenAI chat request (validated by `checkAnthropicChatRequest` on the web side). */
export function toAnthropicRequest(body: Json, upstreamModel: string, stream: boolean): Json {
  const messages = asArray(body.messages).filter(isObject);
  const system = messages
    .filter((m) => m.role === 'system' || m.role === 'developer')
    .flatMap((m) => cacheLast(contentBlocks(typeof m.content === 'string' ? m.content : partsOf(m.content).filter(isTextPart)), m))
    .filter((block) => block.text !== '');
  const legacy = new LegacyCallIds();
  let turns = mergeTurns(messages.map((m) => turnOf(m, legacy)).filter((t): t is Turn => t !== undefined));
  // A system-only conversation: Anthropic needs at least one message, so the instructions become the user turn.
  if (turns.length === 0) turns = [{ role: 'user', content: system.length > 0 ? system.splice(0) : [{ type: 'text', text: '.' }] }];

  const clientTools = toolsOf(body);
  const json = jsonResponseToolOf(body);
  const tools = json ? [...clientTools, json.definition] : clientTools;
  const clientChoice = clientTools.length > 0 ? toolChoiceOf(body) : undefined;
  const toolChoice = json ? jsonToolChoice(json, clientChoice, clientTools.length > 0) : clientChoice;
  const stopSequences = stopSequencesOf(body.stop);
  const user = typeof body.user === 'string' ? body.user : typeof body.safety_identifier === 'string' ? body.safety_identifier : undefined;
  const maxTokens = body.max_completion_tokens ?? body.max_tokens;

  return {
    model: upstreamModel,
    max_tokens: typeof maxTokens === 'number' && maxTokens > 0 ? maxTokens : DEFAULT_MAX_TOKENS,
    ...(system.length > 0 ? { system } : {}),
    messages: turns,
    ...(tools.length > 0 ? { tools } : {}),
    ...(toolChoice ? { tool_choice: toolChoice } : {}),
    ...(stopSequences ? { stop_sequences: stopSequences } : {}),
    ...sampling(body),
    ...(user ? { metadata: { user_id: user } } : {}),
    stream,
  };
}
