// Copies the component schemas eastx validates its answers against out of OpenAI's OpenAPI document
// (../shared/openai-openapi/openapi.json, MIT) into test/fixtures/, with everything they reference, so the
// tests run in any checkout. Run again after adding a root: node scripts/vendor-openapi.mjs
import { readFileSync, writeFileSync } from 'node:fs';

const ROOTS = [
  'ErrorResponse',
  'ListModelsResponse',
  'Model',
  'CreateChatCompletionResponse',
  'CreateChatCompletionStreamResponse',
  'CreateEmbeddingResponse',
  'ImagesResponse',
  'Response',
  'ResponseStreamEvent',
];
const SOURCE = new URL('../../shared/openai-openapi/openapi.json', import.meta.url);
const TARGET = new URL('../test/fixtures/openai-schemas.json', import.meta.url);

const document = JSON.parse(readFileSync(SOURCE, 'utf8'));
const all = document.components.schemas;
const picked = {};
const visit = (name) => {
  if (picked[name]) return;
  if (!all[name]) throw new Error(`no schema ${name}`);
  picked[name] = all[name];
  JSON.stringify(all[name], (key, value) => {
    if (key === '$ref' && typeof value === 'string' && value.startsWith('#/components/schemas/'))
      visit(value.slice('#/components/schemas/'.length));
    return value;
  });
};
ROOTS.forEach(visit);
const out = {
  source: 'openai/openai-openapi f85dbe223d40e1a31cba812ab2d755c7e98a92a3 (MIT)',
  roots: ROOTS,
  components: { schemas: picked },
};
writeFileSync(TARGET, `${JSON.stringify(out, null, 1)}\n`);
console.log(`${Object.keys(picked).length} schemas → ${TARGET.pathname}`);
