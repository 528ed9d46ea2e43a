/**
 * OpenAI `response_format` (json_object, json_schema strict or not) on the Messages API, translated to one
 * forced tool whose `input_schema` is the requested schema; the tool's input comes back to the client as the
 * message content (./response, ./stream). Pure functions, no I/O; the schema is never walked, only wrapped,
 * so the work is constant whatever its size.
 *
 * Why a tool and not Anthropic's own `output_config.format`: that one exists only on some models (Claude
 * 4.5 and later) and refuses many JSON Schema keywords (minimum, maxLength, additionalProperties other than
 * false…) that clients' schemas carry, so the gateway would have to know each upstream model's generation
 * and rewrite schemas lossily. Tool use takes any JSON Schema on every Claude model with tools.
 */

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

/** The forced tool a response_format became, as both directions of the translation need it. */
export interface JsonResponseTool {
  name: string;
  /** The requested schema's root is not an object: the tool input is `{"value": …}` and the content is the value. */
  wrapped: boolean;
  /** The tool definition for the Messages API. */
  definition: Json;
}

const BASE_NAME = 'json_response';

/** A name no client tool uses: json_response, json_response_1, … (at most one probe per client tool). */
function freeName(taken: Set<unknown>): string {
  if (!taken.has(BASE_NAME)) return BASE_NAME;
  for (let i = 1; ; i++) if (!taken.has(`${BASE_NAME}_${i}`)) return `${BASE_NAME}_${i}`;
}

function clientToolNames(body: Json): Set<unknown> {
  const names = new Set<unknown>();
  for (const tool of Array.isArray(body.tools) ? body.tools : [])
    if (isObject(tool) && isObject(tool.function)) names.add(tool.function.name);
  for (const fn of Array.isArray(body.functions) ? body.functions : []) if (isObject(fn)) names.add(fn.name);
  return names;
}

/**
 * A JSON Schema as Anthropic takes it in a tool's `input_schema`: without a `$schema` declaration. Anthropic
 * reads every schema as draft 2020-12 and has refused other declarations (the AI SDK declares draft-07).
 */
export function withoutDialect(schema: Json): Json {
  if (!('$schema' in schema)) return schema;
  const { $schema: _dialect, ...rest } = schema;
  return rest;
}

/** Anthropic's input_schema must be an object schema; any other root is wrapped, its `$defs` kept at the root. */
function inputSchemaOf(requested: Json): { inputSchema: Json; wrapped: boolean } {
  const schema = withoutDialect(requested);
  if (schema.type === 'object') return { inputSchema: schema, wrapped: false };
  const { $defs, definitions, ...value } = schema;
  return {
    inputSchema: {
      type: 'object',
      properties: { value },
      required: ['value'],
      ...($defs !== undefined && { $defs }),
      ...(definitions !== undefined && { definitions }),
    },
    wrapped: true,
  };
}

/** The forced tool for a request's response_format, or undefined when it asks for plain text (or nothing). */
export function jsonResponseToolOf(body: Json): JsonResponseTool | undefined {
  const format = isObject(body.response_format) ? body.response_format : undefined;
  if (format?.type !== 'json_object' && format?.type !== 'json_schema') return undefined;
  const spec = format.type === 'json_schema' && isObject(format.json_schema) ? format.json_schema : {};
  const schema = isObject(spec.schema) ? spec.schema : { type: 'object' };
  const { inputSchema, wrapped } = inputSchemaOf(schema);
  const name = freeName(clientToolNames(body));
  const named = typeof spec.name === 'string' ? ` (${spec.name})` : '';
  const about = typeof spec.description === 'string' ? ` ${spec.description}` : '';
  const description =
    format.type === 'json_object'
      ? 'Reply by calling this tool: its input is your whole answer, as one JSON object.'
      : `Reply by calling this tool: its input is your whole answer${named}, following the schema exactly.${about}`;
  return { name, wrapped, definition: { name, description, input_schema: inputSchema } };
}

/**
 * tool_choice with a JSON answer required: the JSON tool itself when the client offers no tool (or forbids
 * calling them), otherwise any tool (the client's, or the JSON answer), or the client's named tool.
 */
export function jsonToolChoice(tool: JsonResponseTool, clientChoice: Json | undefined, hasClientTools: boolean): Json {
  const parallel = clientChoice?.disable_parallel_tool_use === true ? { disable_parallel_tool_use: true } : {};
  if (!hasClientTools || clientChoice?.type === 'none') return { type: 'tool', name: tool.name };
  if (clientChoice?.type === 'tool') return clientChoice;
  return { type: 'any', ...parallel };
}

/** The tool input as the message content the client asked for. */
export function jsonContentOf(tool: JsonResponseTool, input: unknown): string {
  const value = tool.wrapped && isObject(input) ? input.value : input;
  return JSON.stringify(value ?? null);
}
