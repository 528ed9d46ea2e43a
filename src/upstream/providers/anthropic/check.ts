/**
 * What an OpenAI chat request may ask for that an Anthropic model cannot honour. Runs in the web process
 * before anything is held or enqueued, so the client gets a 400 naming the field instead of a wrong answer.
 * Fields that are safe to drop (presence/frequency penalties, logit_bias, seed…) pass; response_format
 * json_object and json_schema are translated (./structured), so their shape is checked here.
 */
import { IMAGE_MEDIA_TYPES, imageUrlOf, type Json, parseArguments, parseDataUrl } from './request.js';

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);
const asArray = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);

/** The first problem found, as `[field, message]`, or undefined. */
export function anthropicRequestProblem(body: Json): [string, string] | undefined {
  if (typeof body.n === 'number' && body.n > 1) return ['n', 'this model returns one choice per request; n must be 1'];
  if (body.logprobs === true) return ['logprobs', 'log probabilities are not available for this model'];
  if (typeof body.top_logprobs === 'number' && body.top_logprobs > 0)
    return ['top_logprobs', 'log probabilities are not available for this model'];
  const formatProblem = responseFormatProblem(body.response_format);
  if (formatProblem) return formatProblem;
  if (asArray(body.modalities).some((m) => m !== 'text') || body.audio != null) return ['modalities', 'this model answers with text only'];
  for (const [i, tool] of asArray(body.tools).entries()) {
    if (!isObject(tool) || tool.type !== 'function') return [`tools.${i}.type`, 'only function tools are supported by this model'];
  }
  for (const [i, message] of asArray(body.messages).entries()) {
    const problem = messageProblem(message as Json);
    if (problem) return [`messages.${i}${problem[0]}`, problem[1]];
  }
  return undefined;
}

/** The registry has checked the type; a json_schema needs an object `json_schema` whose `schema` is an object. */
function responseFormatProblem(format: unknown): [string, string] | undefined {
  if (!isObject(format) || format.type !== 'json_schema') return undefined;
  if (!isObject(format.json_schema)) return ['response_format.json_schema', 'is required for json_schema, as {"name", "schema"}'];
  const { schema } = format.json_schema;
  if (schema !== undefined && !isObject(schema)) return ['response_format.json_schema.schema', 'must be a JSON Schema object'];
  return undefined;
}

function messageProblem(message: Json): [string, string] | undefined {
  for (const [j, part] of asArray(message.content).entries()) {
    const problem = isObject(part) ? partProblem(part) : ['', 'content parts must be objects'];
    if (problem) return [`.content.${j}${problem[0]}`, problem[1]];
  }
  for (const [j, call] of asArray(message.tool_calls).entries()) {
    const fn = isObject(call) ? call.function : undefined;
    if (!isObject(call) || typeof call.id !== 'string' || !isObject(fn) || typeof fn.name !== 'string') {
      return [`.tool_calls.${j}`, 'each tool call needs an id and a function name'];
    }
    if (!parseArguments(fn.arguments)) return [`.tool_calls.${j}.function.arguments`, 'must be a JSON object'];
  }
  if (isObject(message.function_call) && !parseArguments(message.function_call.arguments)) {
    return ['.function_call.arguments', 'must be a JSON object'];
  }
  if (message.role === 'tool' && typeof message.tool_call_id !== 'string') return ['.tool_call_id', 'is required on tool messages'];
  return undefined;
}

function partProblem(part: Json): [string, string] | undefined {
  if (part.type === 'text' || part.type === 'refusal') return undefined;
  if (part.type !== 'image_url') return ['.type', `${String(part.type)} parts are not supported by this model`];
  const url = imageUrlOf(part);
  if (!url) return ['.image_url.url', 'is required'];
  if (/^https?:\/\//i.test(url)) return undefined;
  const inline = parseDataUrl(url);
  if (!inline) return ['.image_url.url', 'must be an http(s) URL or a base64 data URL'];
  if (!IMAGE_MEDIA_TYPES.includes(inline.mediaType)) {
    return ['.image_url.url', `image type ${inline.mediaType} is not supported (use ${IMAGE_MEDIA_TYPES.join(', ')})`];
  }
  return undefined;
}
