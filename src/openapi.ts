/**
 * GET /openapi.json: an OpenAPI 3.1 document of the public `/v1` routes and the admin API, built from the
 * route table (every route under /v1/ and /admin/api/ appears, with its method, path parameters and guard)
 * and from the same zod schemas the server validates bodies and queries with (zod 4's JSON Schema output,
 * input side: what a client sends). Success bodies are described by the schemas below; errors share one.
 */
import { z } from 'zod';
import * as admin from './admin/schemas.js';
import { chatRequestSchema } from './api/chat.js';
import { embeddingsRequestSchema } from './api/embeddings.js';
import { imagesRequestSchema } from './api/images.js';
import { messagesRequestSchema, promptSchema } from './api/messages.js';
import { ERRORS } from './http/errors.js';
import type { Route } from './http/router.js';
import type { AppContext } from './http/state.js';
import { responsesRequestSchema } from './wire/responses/request.js';

type Json = Record<string, unknown>;

/** JSON Schema (2020-12, the dialect of OpenAPI 3.1) of what a client sends for `schema`. */
function jsonSchema(schema: z.ZodType): Json {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { target: 'draft-2020-12', io: 'input', unrepresentable: 'any' }) as Json;
  return rest;
}

// ---------------------------------------------------------------- answers (documentation only)

const errorResponse = z.object({
  error: z
    .looseObject({
      code: z.enum(Object.keys(ERRORS) as [keyof typeof ERRORS, ...Array<keyof typeof ERRORS>]),
      message: z.string(),
      type: z.string(),
      param: z.string().nullable().describe('the offending request field, or null'),
    })
    .describe('SPEC §2; upstream errors add upstream_status (and upstream_code)'),
});

const anthropicErrorResponse = z.object({
  type: z.literal('error'),
  error: z
    .looseObject({
      type: z.string().describe("Anthropic's name for the HTTP status (invalid_request_error, authentication_error, billing_error…)"),
      message: z.string(),
      code: z.enum(Object.keys(ERRORS) as [keyof typeof ERRORS, ...Array<keyof typeof ERRORS>]).describe('the SPEC §2 code'),
    })
    .describe('SPEC §1b: the SPEC §2 statuses and codes in Anthropic’s shape'),
});

const usd = z.number().describe('USD');
const usage = z.looseObject({
  prompt_tokens: z.int(),
  completion_tokens: z.int(),
  total_tokens: z.int(),
  prompt_tokens_details: z.looseObject({ cached_tokens: z.int(), cache_write_tokens: z.int() }),
  completion_tokens_details: z.looseObject({ reasoning_tokens: z.int() }),
  cost: usd.describe('what this request was charged, USD'),
});
const modelEntry = z.looseObject({
  id: z.string(),
  object: z.literal('model'),
  created: z.int(),
  owned_by: z.string(),
  display_name: z.string(),
  modality: z.enum(['chat', 'embedding', 'image']),
  input_price_per_1m: usd,
  output_price_per_1m: usd,
  cache_read_price_per_1m: usd.optional().describe('chat models: prompt tokens served from the cache'),
  cache_write_price_per_1m: usd.optional().describe('chat models: prompt tokens written to the cache'),
  price_per_image: usd.optional(),
});
const chatCompletion = z.looseObject({
  id: z.string(),
  object: z.literal('chat.completion'),
  created: z.int(),
  model: z.string(),
  choices: z.array(z.looseObject({ index: z.int(), message: z.looseObject({ role: z.literal('assistant') }), finish_reason: z.string() })),
  usage,
});
const anthropicMessage = z.looseObject({
  id: z.string(),
  type: z.literal('message'),
  role: z.literal('assistant'),
  model: z.string(),
  content: z.array(z.looseObject({ type: z.string() })).describe('text, thinking and tool_use blocks'),
  stop_reason: z.string().nullable(),
  usage: z.looseObject({
    input_tokens: z.int(),
    output_tokens: z.int(),
    cache_creation_input_tokens: z.int().nullish(),
    cache_read_input_tokens: z.int().nullish(),
    cost: usd.describe('what this request was charged, USD (eastx’s addition)'),
  }),
});
const responseObject = z.looseObject({
  id: z.string(),
  object: z.literal('response'),
  created_at: z.int(),
  status: z.enum(['completed', 'incomplete', 'in_progress']),
  model: z.string(),
  output: z.array(z.looseObject({ type: z.string() })).describe('reasoning, message (output_text parts) and function_call items'),
  usage: z.looseObject({
    input_tokens: z.int(),
    input_tokens_details: z.looseObject({ cached_tokens: z.int(), cache_write_tokens: z.int() }),
    output_tokens: z.int(),
    output_tokens_details: z.looseObject({ reasoning_tokens: z.int() }),
    total_tokens: z.int(),
    cost: usd.describe('what this request was charged, USD (eastx’s addition)'),
  }),
});
const embeddings = z.looseObject({
  object: z.literal('list'),
  model: z.string(),
  data: z.array(z.looseObject({ object: z.literal('embedding'), index: z.int(), embedding: z.union([z.array(z.number()), z.string()]) })),
  usage: z.looseObject({ prompt_tokens: z.int(), total_tokens: z.int(), cost: usd }),
});
const images = z.looseObject({
  created: z.int(),
  data: z.array(z.looseObject({ url: z.string().optional(), b64_json: z.string().optional(), revised_prompt: z.string().optional() })),
  usage: z.looseObject({
    input_tokens: z.int(),
    output_tokens: z.int(),
    total_tokens: z.int(),
    input_tokens_details: z.looseObject({ text_tokens: z.int(), image_tokens: z.int() }),
    image_count: z.int(),
    cost: usd,
  }),
});

// ---------------------------------------------------------------- what each route takes and answers

interface Operation {
  summary: string;
  body?: z.ZodType;
  query?: z.ZodType;
  answer?: z.ZodType;
  /** `text/event-stream` besides JSON (with `stream: true`): what its events are */
  stream?: string;
}

const OPERATIONS: Record<string, Operation> = {
  'GET /v1/models': {
    summary: 'List the models this key can call',
    answer: z.object({ object: z.literal('list'), data: z.array(modelEntry) }),
  },
  'GET /v1/models/*id': { summary: 'One model', answer: modelEntry },
  'POST /v1/chat/completions': {
    summary: 'Chat completion (stream or not)',
    body: chatRequestSchema,
    answer: chatCompletion,
    stream: 'data: <chat.completion.chunk>, …, data: [DONE]',
  },
  'POST /v1/messages': {
    summary: "Anthropic's Messages API (stream or not); the key also in x-api-key",
    body: messagesRequestSchema,
    answer: anthropicMessage,
    stream: 'event: message_start, content_block_start/delta/stop…, message_delta (usage), message_stop; ping keep-alives',
  },
  'POST /v1/messages/count_tokens': {
    summary: "Anthropic's token count of a Messages prompt (billed nothing, counted by RPM)",
    body: promptSchema,
    answer: z.object({ input_tokens: z.int() }),
  },
  'POST /v1/embeddings': { summary: 'Embeddings', body: embeddingsRequestSchema, answer: embeddings },
  'POST /v1/images/generations': { summary: 'Image generation', body: imagesRequestSchema, answer: images },
  'POST /v1/responses': {
    summary: "OpenAI's Responses API (stream or not), over every chat model",
    body: responsesRequestSchema,
    answer: responseObject,
    stream: 'event: response.created, response.in_progress, response.output_item.added, …, response.completed (usage); no [DONE]',
  },
  'GET /v1/responses/:id': { summary: "A stored response (store: true, 30 days; the key's own account only)", answer: responseObject },
  'GET /admin/api/channels': { summary: 'Channels with their tokens (never their secrets)' },
  'POST /admin/api/channels': { summary: 'Create a channel', body: admin.channelBody },
  'POST /admin/api/channels/:id/tokens': { summary: 'Add an upstream token to a channel', body: admin.tokenBody },
  'PATCH /admin/api/tokens/:id': { summary: 'Change a token', body: admin.tokenPatch },
  'GET /admin/api/models': { summary: 'Every model, whatever its status' },
  'PUT /admin/api/models/*id': { summary: 'Create or replace a model', body: admin.modelBody },
  'GET /admin/api/users': { summary: 'Find a user by email, or list users newest first', query: admin.usersQuery },
  'POST /admin/api/users': { summary: 'Create a user', body: admin.userBody },
  'GET /admin/api/users/:id': { summary: 'One user with balance and holds' },
  'POST /admin/api/users/:id/credit': { summary: 'Credit a balance', body: admin.creditBody },
  'POST /admin/api/users/:id/adjust': { summary: 'Signed adjustment with a note', body: admin.adjustBody },
  'GET /admin/api/users/:id/keys': { summary: "A user's keys" },
  'POST /admin/api/users/:id/keys': { summary: 'Create a key (shown once)', body: admin.keyBody },
  'GET /admin/api/keys/:id': { summary: 'One key' },
  'PATCH /admin/api/keys/:id': { summary: 'Change a key', body: admin.keyPatch },
  'DELETE /admin/api/keys/:id': { summary: 'Revoke a key' },
  'POST /admin/api/redemption-codes': { summary: 'Mint redemption codes (shown once)', body: admin.codesBody },
  'GET /admin/api/usage': { summary: 'Ledger rows, newest first', query: admin.usageQuery },
};

const SECURITY: Partial<Record<Route['guard'], string>> = { customer: 'customerKey', operator: 'adminToken' };

/** `/v1/models/*id` → `/v1/models/{id}`, with the parameter names. */
function openApiPath(path: string): { path: string; params: Array<{ name: string; wildcard: boolean }> } {
  const params: Array<{ name: string; wildcard: boolean }> = [];
  const converted = path.replace(/([:*])(\w+)/g, (_all, kind: string, name: string) => {
    params.push({ name, wildcard: kind === '*' });
    return `{${name}}`;
  });
  return { path: converted, params };
}

const operationId = (method: string, path: string) =>
  method.toLowerCase() +
  path
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((word) => word[0].toUpperCase() + word.slice(1))
    .join('');

function queryParameters(query: z.ZodType): Json[] {
  const schema = jsonSchema(query);
  const required = new Set((schema.required as string[] | undefined) ?? []);
  return Object.entries((schema.properties ?? {}) as Record<string, Json>).map(([name, property]) => ({
    name,
    in: 'query',
    required: required.has(name),
    schema: property,
  }));
}

function operationOf(route: Route, method: string): Json {
  const key = `${method} ${route.path}`;
  const doc: Operation = OPERATIONS[key] ?? { summary: key };
  const { params } = openApiPath(route.path);
  const parameters = [
    ...params.map(({ name, wildcard }) => ({
      name,
      in: 'path',
      required: true,
      schema: { type: 'string' },
      ...(wildcard && { description: 'may contain "/": send it URL-encoded (%2F)' }),
    })),
    ...(doc.query ? queryParameters(doc.query) : []),
  ];
  const content: Json = { 'application/json': { schema: doc.answer ? jsonSchema(doc.answer) : { type: 'object' } } };
  if (doc.stream) content['text/event-stream'] = { schema: { type: 'string', description: doc.stream } };
  const security = SECURITY[route.guard];
  const errorAnswer = { $ref: route.errors === 'anthropic' ? '#/components/responses/AnthropicError' : '#/components/responses/Error' };
  const schemes = security ? [{ [security]: [] }, ...(route.errors === 'anthropic' ? [{ anthropicApiKey: [] }] : [])] : [];
  return {
    operationId: operationId(method, route.path),
    summary: doc.summary,
    tags: [route.path.startsWith('/v1/') ? 'public' : 'admin'],
    ...(schemes.length > 0 && { security: schemes }),
    ...(parameters.length > 0 && { parameters }),
    ...(doc.body && { requestBody: { required: true, content: { 'application/json': { schema: jsonSchema(doc.body) } } } }),
    responses: {
      [method === 'POST' && !route.path.startsWith('/v1/') ? '2XX' : '200']: { description: 'OK', content },
      '4XX': errorAnswer,
      '5XX': errorAnswer,
    },
  };
}

/** The version of the API this document describes (not of the package). */
const API_VERSION = '1';

/** The document for these routes (the public /v1 API and the admin API among them). */
export function openApiDocument(routes: Route[]): Json {
  const paths: Record<string, Json> = {};
  for (const route of routes) {
    if (!route.path.startsWith('/v1/') && !route.path.startsWith('/admin/api/')) continue;
    const methods = route.method === 'ALL' ? ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] : [route.method];
    const { path } = openApiPath(route.path);
    paths[path] ??= {};
    for (const method of methods) paths[path][method.toLowerCase()] = operationOf(route, method);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'eastx',
      version: API_VERSION,
      description:
        "An OpenAI-compatible LLM gateway: point any OpenAI SDK at /v1 with an sk-eastx-… key. The admin API (SPEC §5) takes the operator's ADMIN_TOKEN.",
    },
    tags: [
      { name: 'public', description: 'OpenAI-compatible API (sk-eastx-… keys)' },
      { name: 'admin', description: 'Operator API (ADMIN_TOKEN)' },
    ],
    paths,
    components: {
      securitySchemes: {
        customerKey: { type: 'http', scheme: 'bearer', description: 'an sk-eastx-… API key' },
        adminToken: { type: 'http', scheme: 'bearer', description: "the deployment's ADMIN_TOKEN" },
        anthropicApiKey: { type: 'apiKey', in: 'header', name: 'x-api-key', description: 'an sk-eastx-… API key (Anthropic-style routes)' },
      },
      responses: {
        Error: { description: 'an error (SPEC §2)', content: { 'application/json': { schema: jsonSchema(errorResponse) } } },
        AnthropicError: {
          description: 'an error on an Anthropic-style route (SPEC §1b)',
          content: { 'application/json': { schema: jsonSchema(anthropicErrorResponse) } },
        },
      },
    },
  };
}

let built: { routes: Route[]; document: Json } | undefined;

/** GET /openapi.json (public): the document, built once per process, with this deployment's URL as its server. */
export function serveOpenApi(ctx: AppContext, routes: Route[]): void {
  if (built?.routes !== routes) built = { routes, document: openApiDocument(routes) };
  ctx.set('cache-control', 'public, max-age=300');
  ctx.body = { ...built.document, servers: [{ url: `${ctx.protocol}://${ctx.host}` }] };
}
