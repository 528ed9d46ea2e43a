/**
 * Anthropic Messages request → OpenAI chat request, for `openai` and `dashscope` channels (SPEC §1b). Pure
 * functions, no I/O; the other direction (chat → Messages, for the chat route on Anthropic channels) is
 * src/upstream/providers/anthropic/request.ts.
 */
import { textOf } from '../../upstream/providers/anthropic/request.js';
import type { Json, ReasoningParam } from '../../upstream/providers/types.js';

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);
/** A content value (a string, or blocks) as its blocks. */
export const blocksOf = (content: unknown): Json[] =>
  typeof content === 'string' ? [{ type: 'text', text: content }] : Array.isArray(content) ? content.filter(isObject) : [];

/** An image block's source as the URL OpenAI's `image_url` part takes (base64 → data URL). */
function imageUrlOfSource(source: unknown): string | undefined {
  if (!isObject(source)) return undefined;
  if (source.type === 'base64' && typeof source.data === 'string')
    return `data:${String(source.media_type ?? 'image/png')};base64,${source.data}`;
  if (source.type === 'url' && typeof source.url === 'string') return source.url;
  return undefined;
}

/**
 * Whether the chat translation carries a turn's block over (a tool result only its text); it drops documents,
 * search results, thinking, and images without a base64 or URL source. An Anthropic channel gets them all, so
 * the hold counts what this drops (src/wire/messages/count.ts).
 */
export function carriedOver(block: Json): boolean {
  if (block.type === 'image') return imageUrlOfSource(block.source) !== undefined;
  return block.type === 'text' || block.type === 'tool_use' || block.type === 'tool_result';
}

/** User content blocks (text, images) as OpenAI content: a string when it is text only. */
function userContent(blocks: Json[]): string | Json[] | undefined {
  const parts: Json[] = [];
  for (const block of blocks) {
    if (block.type === 'text' && typeof block.text === 'string') parts.push({ type: 'text', text: block.text });
    else if (block.type === 'image') {
      const url = imageUrlOfSource(block.source);
      if (url) parts.push({ type: 'image_url', image_url: { url } });
    }
  }
  if (parts.length === 0) return undefined;
  return parts.every((part) => part.type === 'text') ? parts.map((part) => part.text).join('\n') : parts;
}

/** A tool_result's content (a string, or text and image blocks) as a tool message's text. */
function toolResultText(block: Json): string {
  const text = typeof block.content === 'string' ? block.content : textOf(blocksOf(block.content));
  return block.is_error === true && text !== '' ? `Error: ${text}` : text;
}

/** One Messages turn as OpenAI messages: a user turn's tool results become tool messages, first. */
function chatMessagesOf(message: Json): Json[] {
  const blocks = blocksOf(message.content);
  if (message.role === 'assistant') {
    const text = blocks
      .filter((block) => block.type === 'text')
      .map((block) => String(block.text ?? ''))
      .join('');
    const calls = blocks
      .filter((block) => block.type === 'tool_use')
      .map((block) => ({
        id: String(block.id ?? ''),
        type: 'function',
        function: { name: String(block.name ?? ''), arguments: JSON.stringify(block.input ?? {}) },
      }));
    // thinking blocks are the upstream model's own; an OpenAI-type upstream takes none back
    return [
      { role: 'assistant', content: text === '' && calls.length > 0 ? null : text, ...(calls.length > 0 ? { tool_calls: calls } : {}) },
    ];
  }
  const results = blocks
    .filter((block) => block.type === 'tool_result')
    .map((block) => ({ role: 'tool', tool_call_id: String(block.tool_use_id ?? ''), content: toolResultText(block) }));
  const content = userContent(blocks);
  return content === undefined ? results : [...results, { role: 'user', content }];
}

/** `system`: a string or text blocks (their cache_control has no OpenAI counterpart and is dropped). */
function systemText(system: unknown): string {
  if (typeof system === 'string') return system;
  return blocksOf(system)
    .filter((block) => block.type === 'text')
    .map((block) => String(block.text ?? ''))
    .join('\n\n');
}

/**
 * The `output_config` fields a translation takes: `format` (as response_format); `effort` is dropped, not
 * refused, since Claude Code sends it on every request.
 */
const TRANSLATED_OUTPUT_CONFIG = new Set(['format', 'effort']);

/**
 * Anthropic's structured output as [its field, the format]: `output_config.format`, or the structured-outputs
 * beta's top-level `output_format` (deprecated; Anthropic refuses both at once).
 */
function outputFormatOf(body: Json): [string, unknown] {
  const config = isObject(body.output_config) ? body.output_config : {};
  return config.format != null ? ['output_config.format', config.format] : ['output_format', body.output_format];
}

/** What of `output_config` (and `output_format`) a translation cannot honour: anything but a JSON schema format. */
function outputProblem(body: Json): [string, string] | undefined {
  const config = body.output_config;
  if (config != null && !isObject(config)) return ['output_config', 'must be an object'];
  const other = Object.entries(config ?? {}).find(([key, value]) => value != null && !TRANSLATED_OUTPUT_CONFIG.has(key));
  if (other) return [`output_config.${other[0]}`, 'is served only by Anthropic channels, and this model has none'];
  if (isObject(config) && config.format != null && body.output_format != null)
    return ['output_format', 'give output_config.format or the deprecated output_format, not both'];
  const [field, format] = outputFormatOf(body);
  if (format == null) return undefined;
  const type = isObject(format) ? format.type : undefined;
  if (type !== 'json_schema') return [`${field}.type`, `must be "json_schema" for this model (got ${JSON.stringify(type ?? null)})`];
  return isObject(format) && isObject(format.schema) ? undefined : [`${field}.schema`, 'must be a JSON schema object'];
}

/**
 * What a channel that translates to chat cannot honour, as [field, message]: Anthropic's server tools (web
 * search, code execution…: a `type` other than `custom` and no `input_schema`) run only on Anthropic's side, and
 * so does any output_config but a JSON schema format.
 */
export function translationProblem(body: Json): [string, string] | undefined {
  const output = outputProblem(body);
  if (output) return output;
  const at = blocksOf(body.tools).findIndex((tool) => tool.type !== undefined && tool.type !== 'custom' && !isObject(tool.input_schema));
  if (at >= 0) {
    const type = String(blocksOf(body.tools)[at].type);
    return [`tools.${at}`, `the server tool ${JSON.stringify(type)} is served only by Anthropic channels, and this model has none`];
  }
  // a user turn of documents or search results only would reach the upstream as no message at all
  const messages: unknown[] = Array.isArray(body.messages) ? body.messages : [];
  const empty = messages.findIndex((m) => isObject(m) && m.role === 'user' && chatMessagesOf(m).length === 0);
  if (empty < 0) return undefined;
  return [
    `messages.${empty}.content`,
    'holds no block this model can take (text, image or tool_result); documents and search results are served only by Anthropic channels',
  ];
}

/** Client tools (`input_schema`) as function tools; Anthropic's server tools are refused on the web side. */
function toolsOf(tools: unknown): Json[] {
  return blocksOf(tools).map((tool) => ({
    type: 'function',
    function: {
      name: tool.name,
      ...(typeof tool.description === 'string' ? { description: tool.description } : {}),
      parameters: isObject(tool.input_schema) ? tool.input_schema : { type: 'object', properties: {} },
    },
  }));
}

function toolChoiceOf(choice: unknown): Json {
  if (!isObject(choice)) return {};
  const parallel = choice.disable_parallel_tool_use === true ? { parallel_tool_calls: false } : {};
  if (choice.type === 'any') return { tool_choice: 'required', ...parallel };
  if (choice.type === 'none') return { tool_choice: 'none' };
  if (choice.type === 'tool' && typeof choice.name === 'string')
    return { tool_choice: { type: 'function', function: { name: choice.name } }, ...parallel };
  return { tool_choice: 'auto', ...parallel };
}

/** A JSON schema output format as OpenAI's strict json_schema response_format (Anthropic's is always strict). */
function responseFormatOf(body: Json): Json {
  const [, format] = outputFormatOf(body);
  if (!isObject(format) || format.type !== 'json_schema' || !isObject(format.schema)) return {};
  return { response_format: { type: 'json_schema', json_schema: { name: 'output', schema: format.schema, strict: true } } };
}

/**
 * A thinking budget as OpenAI's `reasoning_effort`: under 4k tokens low, under 16k medium, else high (Claude
 * Code's "think" / "think hard" / "ultrathink" land on low / medium / high).
 */
export function effortOf(budgetTokens: unknown): 'low' | 'medium' | 'high' {
  const budget = typeof budgetTokens === 'number' ? budgetTokens : 8_192;
  return budget < 4_096 ? 'low' : budget < 16_384 ? 'medium' : 'high';
}

/**
 * `thinking` as the upstream's reasoning setting: OpenAI's reasoning_effort; DashScope's enable_thinking (with
 * thinking_budget), on streams only, since DashScope refuses thinking in non-streaming calls.
 */
function reasoningOf(body: Json, param: ReasoningParam): Json {
  const thinking = body.thinking;
  if (!isObject(thinking)) return {};
  const enabled = thinking.type === 'enabled' || thinking.type === 'adaptive';
  if (param === 'enable_thinking') {
    if (!enabled || body.stream !== true) return thinking.type === 'disabled' ? { enable_thinking: false } : {};
    return { enable_thinking: true, ...(typeof thinking.budget_tokens === 'number' ? { thinking_budget: thinking.budget_tokens } : {}) };
  }
  if (param === 'reasoning_effort' && enabled) return { reasoning_effort: effortOf(thinking.budget_tokens) };
  return {};
}

/** The OpenAI chat body for a Messages body (model and stream flags are set by the caller and the adapter). */
export function toChatRequest(body: Json, reasoning: ReasoningParam): Json {
  const system = systemText(body.system);
  const messages = [
    ...(system !== '' ? [{ role: 'system', content: system }] : []),
    ...(Array.isArray(body.messages) ? body.messages.filter(isObject).flatMap(chatMessagesOf) : []),
  ];
  const tools = toolsOf(body.tools);
  const stop = Array.isArray(body.stop_sequences) ? body.stop_sequences.filter((s) => typeof s === 'string' && s !== '') : [];
  const metadata = isObject(body.metadata) ? body.metadata : {};
  return {
    model: body.model,
    messages,
    ...(typeof body.max_tokens === 'number' ? { max_tokens: body.max_tokens } : {}),
    ...(typeof body.temperature === 'number' ? { temperature: body.temperature } : {}),
    ...(typeof body.top_p === 'number' ? { top_p: body.top_p } : {}),
    ...(stop.length > 0 ? { stop } : {}),
    ...(tools.length > 0 ? { tools, ...toolChoiceOf(body.tool_choice) } : {}),
    ...(typeof metadata.user_id === 'string' ? { user: metadata.user_id } : {}),
    ...responseFormatOf(body),
    ...reasoningOf(body, reasoning),
  };
}

/** The prompt of a Messages body as a chat request without any reasoning setting: what the gateway counts and holds for. */
export const promptAsChat = (body: Json) => toChatRequest(body, 'thinking') as Json & { messages: unknown[] };
