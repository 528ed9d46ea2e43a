/**
 * A deterministic JSON value that fits a JSON Schema: what the mock model answers for a `response_format`
 * json_schema, and the arguments of the tool calls it makes. Strings are the caller's `text` (the user's last
 * words) unless the schema says otherwise (enum, const, format, length), so tests can recognise them.
 *
 * It knows the keywords that structured-output schemas use (type, properties, items, enum, const, anyOf,
 * oneOf, allOf, local $ref, length and range bounds, formats) and stays bounded on any schema: refs nest at
 * most MAX_DEPTH deep and at most MAX_NODES schema nodes are visited.
 */
type Json = Record<string, unknown>;

const MAX_DEPTH = 12;
const MAX_NODES = 5_000;

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

const FORMATS: Record<string, string> = {
  'date-time': '2030-01-02T03:04:05Z',
  date: '2030-01-02',
  time: '03:04:05',
  email: 'mock@example.com',
  uri: 'https://example.com/mock',
  url: 'https://example.com/mock',
  uuid: '00000000-0000-4000-8000-000000000000',
  hostname: 'example.com',
  ipv4: '192.0.2.1',
  ipv6: '2001:db8::1',
  duration: 'P1D',
};

class Sampler {
  #nodes = 0;

  constructor(
    private readonly root: Json,
    private readonly text: string,
  ) {}

  /** `#/$defs/x`-style pointers inside the root schema. */
  #resolve(ref: string): unknown {
    if (!ref.startsWith('#')) return {};
    let node: unknown = this.root;
    for (const raw of ref.slice(1).split('/').filter(Boolean)) {
      const key = raw.replaceAll('~1', '/').replaceAll('~0', '~');
      node = isObject(node) ? node[key] : Array.isArray(node) ? node[Number(key)] : undefined;
    }
    return node ?? {};
  }

  value(schema: unknown, depth = 0): unknown {
    if (++this.#nodes > MAX_NODES || depth > MAX_DEPTH || !isObject(schema)) return null;
    if (typeof schema.$ref === 'string') return this.value(this.#resolve(schema.$ref), depth + 1);
    if ('const' in schema) return schema.const;
    if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum.find((v) => v !== null) ?? schema.enum[0];
    const branches = Array.isArray(schema.anyOf) ? schema.anyOf : Array.isArray(schema.oneOf) ? schema.oneOf : undefined;
    if (branches && branches.length > 0) {
      const chosen = branches.find((b) => !(isObject(b) && b.type === 'null')) ?? branches[0];
      return this.value(chosen, depth + 1);
    }
    if (Array.isArray(schema.allOf) && schema.allOf.length > 0) {
      const parts = schema.allOf.map((part) => this.value(part, depth + 1));
      return parts.every(isObject) ? Object.assign({}, ...parts) : parts[0];
    }
    const types = Array.isArray(schema.type) ? schema.type : [schema.type];
    const type = types.find((t) => t !== 'null') ?? types[0] ?? (isObject(schema.properties) ? 'object' : undefined);
    switch (type) {
      case 'object':
        return this.#object(schema, depth);
      case 'array':
        return this.#array(schema, depth);
      case 'string':
        return this.#string(schema);
      case 'integer':
      case 'number':
        return this.#number(schema, type === 'integer');
      case 'boolean':
        return true;
      case 'null':
        return null;
      default:
        return this.text;
    }
  }

  #object(schema: Json, depth: number): Json {
    const out: Json = {};
    const properties = isObject(schema.properties) ? schema.properties : {};
    for (const [name, property] of Object.entries(properties)) out[name] = this.value(property, depth + 1);
    return out;
  }

  #array(schema: Json, depth: number): unknown[] {
    const prefix = Array.isArray(schema.prefixItems) ? schema.prefixItems : [];
    const min = typeof schema.minItems === 'number' ? schema.minItems : 1;
    const max = typeof schema.maxItems === 'number' ? schema.maxItems : Math.max(min, 1);
    const count = Math.min(Math.max(min, prefix.length, 1), max, 16);
    return Array.from({ length: count }, (_, i) => this.value(i < prefix.length ? prefix[i] : schema.items, depth + 1));
  }

  #string(schema: Json): string {
    const format = typeof schema.format === 'string' ? FORMATS[schema.format] : undefined;
    let text = format ?? this.text;
    const min = typeof schema.minLength === 'number' ? schema.minLength : 0;
    const max = typeof schema.maxLength === 'number' ? schema.maxLength : Number.POSITIVE_INFINITY;
    if (text.length < min) text = text.padEnd(Math.min(min, 10_000), '.');
    return text.length > max ? Array.from(text).slice(0, max).join('') : text;
  }

  #number(schema: Json, integer: boolean): number {
    let value = 42;
    const low =
      typeof schema.minimum === 'number'
        ? schema.minimum
        : typeof schema.exclusiveMinimum === 'number'
          ? schema.exclusiveMinimum + 1
          : undefined;
    const high =
      typeof schema.maximum === 'number'
        ? schema.maximum
        : typeof schema.exclusiveMaximum === 'number'
          ? schema.exclusiveMaximum - 1
          : undefined;
    if (low !== undefined && value < low) value = low;
    if (high !== undefined && value > high) value = high;
    return integer ? Math.ceil(value) : value;
  }
}

/** A value fitting `schema`, with `text` in its free-text strings. */
export function sampleOf(schema: unknown, text: string): unknown {
  return new Sampler(isObject(schema) ? schema : {}, text).value(schema);
}

/**
 * Tool-call arguments for a tool with these parameters: a fitting sample, or `{"query": text}` for a tool
 * that declares no properties (what the mock has always answered).
 */
export function toolArgumentsOf(parameters: unknown, text: string): Json {
  const declared = isObject(parameters) && isObject(parameters.properties) && Object.keys(parameters.properties).length > 0;
  const sample = declared ? sampleOf(parameters, text) : undefined;
  return isObject(sample) ? sample : { query: text };
}
