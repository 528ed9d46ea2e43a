import { readFileSync } from 'node:fs';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import type { ExecutionContext } from 'ava';

/**
 * OpenAI's published component schemas (test/fixtures, vendored by scripts/vendor-openapi.mjs from
 * ../shared/openai-openapi), compiled with ajv in JSON Schema 2020-12 mode, as OpenAPI 3.1 uses.
 */
const document = JSON.parse(readFileSync(new URL('../fixtures/openai-schemas.json', import.meta.url), 'utf8')) as { components: unknown };

/**
 * OpenAI's 3.1 document still says `nullable: true` in places (an OpenAPI 3.0 keyword, which JSON Schema
 * 2020-12 lacks), meaning "or null": a stream chunk's `finish_reason` is an enum of strings, nullable. It
 * is rewritten the 2020-12 way: `null` added to the type and to the enum; beside a bare `$ref` (the chunk's
 * `usage`), `anyOf [it, null]`.
 */
function nullableAsNull(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(nullableAsNull);
  if (typeof node !== 'object' || node === null) return node;
  const { nullable, ...out } = Object.fromEntries(Object.entries(node).map(([key, value]) => [key, nullableAsNull(value)])) as Record<
    string,
    unknown
  >;
  if (nullable !== true) return out;
  if (typeof out.type === 'string') {
    return { ...out, type: [out.type, 'null'], ...(Array.isArray(out.enum) && { enum: [...out.enum, null] }) };
  }
  const { description, ...rest } = out;
  return { ...(description !== undefined && { description }), anyOf: [rest, { type: 'null' }] };
}

const ajv = new Ajv2020({ strict: false, allErrors: true, logger: false });
ajv.addSchema({ $id: 'openai', components: nullableAsNull(document.components) });

const compiled = new Map<string, ValidateFunction>();
function validatorOf(schema: string): ValidateFunction {
  let validate = compiled.get(schema);
  if (!validate) {
    validate = ajv.getSchema(`openai#/components/schemas/${schema}`);
    if (!validate) throw new Error(`no OpenAI schema ${schema}`);
    compiled.set(schema, validate);
  }
  return validate;
}

/** Asserts that `value` fits OpenAI's component schema `schema` (e.g. `ErrorResponse`). */
export function assertFitsOpenAI(t: ExecutionContext, schema: string, value: unknown, what = schema): void {
  const validate = validatorOf(schema);
  const ok = validate(value) as boolean;
  t.true(ok, `${what} does not fit ${schema}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(value).slice(0, 400)}`);
}
