import { compileErrors, validate } from '@readme/openapi-parser';
import { Ajv2020 } from 'ajv/dist/2020.js';
import test from 'ava';
import { z } from 'zod';
import { modelBody } from '../src/admin/schemas.js';
import { chatRequestSchema } from '../src/api/chat.js';
import { ROUTES } from '../src/routes.js';
import { responsesRequestSchema } from '../src/wire/responses/request.js';
import { AdminClient } from './helpers/admin.js';
import { newCustomer } from './helpers/customer.js';
import { freshEnvironment } from './helpers/env.js';
import { type Gateway, startGateway } from './helpers/gateway.js';

// GET /openapi.json: OpenAPI 3.1 of the public /v1 routes and the admin API, from the server's own zod schemas.
let gateway: Gateway;
let url: string;
let document: Record<string, any>;
let apiKey: string;

test.before(async () => {
  const { env } = await freshEnvironment('openapi_document');
  gateway = await startGateway(env);
  url = gateway.urls[0];
  ({ apiKey } = await newCustomer(new AdminClient(url, env.ADMIN_TOKEN), 'openapi@example.com', '1'));
  const res = await fetch(`${url}/openapi.json`);
  if (res.status !== 200) throw new Error(`GET /openapi.json → ${res.status}`);
  document = (await res.json()) as Record<string, any>;
});

test.after.always(async () => {
  await gateway?.stop();
});

test('served to anyone as JSON, and valid OpenAPI 3.1 per @readme/openapi-parser', async (t) => {
  const res = await fetch(`${url}/openapi.json`);
  t.is(res.status, 200);
  t.regex(res.headers.get('content-type') ?? '', /^application\/json/);
  t.is(document.openapi, '3.1.0');
  t.deepEqual(document.servers, [{ url }]);
  const result = await validate(structuredClone(document) as never);
  t.true(result.valid, result.valid ? '' : compileErrors(result));
  t.deepEqual(result.warnings, []);
  // the validator does refuse a broken document: an undeclared path parameter
  const broken = structuredClone(document);
  delete broken.paths['/v1/models/{id}'].get.parameters;
  t.false((await validate(broken as never)).valid);
});

test('every /v1 and /admin/api route of the route table is documented, with its guard as security', (t) => {
  const documented = ROUTES.filter((r) => r.path.startsWith('/v1/') || r.path.startsWith('/admin/api/'));
  t.true(documented.length >= 20);
  for (const route of documented) {
    const path = route.path.replace(/[:*](\w+)/g, '{$1}');
    const operation = document.paths[path]?.[route.method.toLowerCase()];
    t.truthy(operation, `${route.method} ${route.path}`);
    const scheme = route.guard === 'customer' ? 'customerKey' : 'adminToken';
    const alternatives = route.errors === 'anthropic' ? [{ [scheme]: [] }, { anthropicApiKey: [] }] : [{ [scheme]: [] }];
    t.deepEqual(operation.security, alternatives, `${route.method} ${route.path}`);
    const errors = route.errors === 'anthropic' ? 'AnthropicError' : 'Error';
    t.is(operation.responses['4XX'].$ref, `#/components/responses/${errors}`, `${route.method} ${route.path}`);
  }
  t.is(
    Object.keys(document.paths).filter((p) => !p.startsWith('/v1/') && !p.startsWith('/admin/api/')).length,
    0,
    'console, metrics and Bull Board are not in it',
  );
  t.like(document.paths['/v1/models/{id}'].get.parameters[0], { name: 'id', in: 'path', required: true });
  t.like(
    document.paths['/admin/api/usage'].get.parameters.map((p: { name: string }) => p.name),
    ['user_id', 'key_id', 'since', 'before_id', 'limit'],
  );
});

test('request bodies are the zod schemas the server validates with (z.toJSONSchema, input side)', (t) => {
  const bodyOf = (path: string, method: string) => document.paths[path][method].requestBody.content['application/json'].schema;
  const expected = (schema: z.ZodType) => {
    const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { target: 'draft-2020-12', io: 'input', unrepresentable: 'any' });
    return rest;
  };
  t.deepEqual(bodyOf('/v1/chat/completions', 'post'), expected(chatRequestSchema));
  t.deepEqual(bodyOf('/v1/responses', 'post'), expected(responsesRequestSchema));
  t.truthy(document.paths['/v1/responses'].post.responses['200'].content['text/event-stream']);
  t.like(document.paths['/v1/responses/{id}'].get.parameters[0], { name: 'id', in: 'path', required: true });
  t.deepEqual(bodyOf('/admin/api/models/{id}', 'put'), expected(modelBody));
  t.truthy(bodyOf('/admin/api/models/{id}', 'put').properties.cache_read_price_per_1m);
  for (const [path, method] of [
    ['/v1/embeddings', 'post'],
    ['/v1/images/generations', 'post'],
    ['/admin/api/channels', 'post'],
    ['/admin/api/users/{id}/keys', 'post'],
    ['/admin/api/keys/{id}', 'patch'],
  ]) {
    t.is(bodyOf(path, method).type, 'object', `${method} ${path}`);
  }
});

test('the documented schemas and the server agree on what a valid body is', async (t) => {
  const ajv = new Ajv2020({ strict: false });
  const chat = ajv.compile(document.paths['/v1/chat/completions'].post.requestBody.content['application/json'].schema);
  const images = ajv.compile(document.paths['/v1/images/generations'].post.requestBody.content['application/json'].schema);
  const cases: Array<[string, (body: unknown) => boolean, unknown]> = [
    ['/v1/chat/completions', chat, { model: 'm', messages: [] }],
    ['/v1/chat/completions', chat, { model: 'm', messages: [{ role: 'robot', content: 'x' }] }],
    ['/v1/chat/completions', chat, { model: 'm', messages: [{ role: 'user', content: 'x' }], max_tokens: 0 }],
    ['/v1/chat/completions', chat, { model: 'm', messages: [{ role: 'user', content: 'x' }], response_format: 'json' }],
    ['/v1/images/generations', images, { model: 'm', prompt: 'x', response_format: 'png' }],
    ['/v1/images/generations', images, { model: 'm', prompt: 'x', n: 9 }],
  ];
  for (const [path, fits, body] of cases) {
    t.false(fits(body), `the document refuses ${JSON.stringify(body)}`);
    const res = await fetch(`${url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    t.is(res.status, 400, `the server refuses ${JSON.stringify(body)} too`);
  }
  t.true(chat({ model: 'm', messages: [{ role: 'user', content: 'x' }], response_format: { type: 'json_object' }, anything: 1 }));
  t.true(images({ model: 'm', prompt: 'x', n: 2, response_format: 'b64_json' }));
});
