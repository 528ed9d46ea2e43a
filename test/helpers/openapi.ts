import { readFileSync } from 'node:fs';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import type { ExecutionContext } from 'ava';

/**
 * OpenAI's published component schemas (test/fixtures, vendored by scripts/vendor-openapi.mjs from
 * ../shared/openai-openapi), compiled with ajv in JSON Schema 2020-12 mode, as OpenAPI 3.1 uses.
 */
const document = JSON.parse(readFileSync(new URL('../fixtures/openai-schemas.json', import.meta.url), 'utf8')) as { components: unknown };
const ajv = new Ajv2020({ strict: false, allErrors: true });
ajv.addSchema({ $id: 'openai', components: document.components });

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
