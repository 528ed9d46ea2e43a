import { z } from 'zod';
import { parseDecimal } from '../billing/money.js';

/**
 * The admin API's bodies and query (SPEC §5). Amounts arrive as JSON numbers or decimal strings and leave
 * these schemas as bigint integer units (nano-USD, or micro-USD per 1M tokens for token prices), so the
 * operations never see a float. The CLI feeds its arguments through the same schemas.
 */

const MAX_ID = Number.MAX_SAFE_INTEGER;
const ID_MESSAGE = 'must be a positive integer id';
/** No single admin amount or price above this (keeps every sum far inside BIGINT). */
const MAX_AMOUNT_USD = 1_000_000_000n;
const MAX_PRICE_USD = 1_000_000n;

const required = (what: string) => (issue: { input?: unknown }) => (issue.input === undefined ? 'is required' : `must be ${what}`);

/** A row id in a body: a positive integer (a digit string is accepted too). */
export const rowId = z
  .union([z.number().int(ID_MESSAGE).min(1, ID_MESSAGE).max(MAX_ID, ID_MESSAGE), z.string().regex(/^\d{1,15}$/, ID_MESSAGE)], {
    error: required('a positive integer id'),
  })
  .transform(Number)
  .refine((n) => n >= 1, ID_MESSAGE);

type Bound = 'positive' | 'non-negative' | 'non-zero';

const BOUND_OK: Record<Bound, (units: bigint) => boolean> = {
  positive: (u) => u > 0n,
  'non-negative': (u) => u >= 0n,
  'non-zero': (u) => u !== 0n,
};

/** A USD amount with at most `scale` decimals → bigint units of 10^-scale USD. */
function decimal(scale: number, bound: Bound, maxUsd: bigint) {
  const max = maxUsd * 10n ** BigInt(scale);
  return z.union([z.number(), z.string()], { error: required('a number or a decimal string') }).transform((value, ctx) => {
    const units = parseDecimal(value, scale);
    if (units === undefined) {
      ctx.addIssue({ code: 'custom', message: `must be a decimal number with at most ${scale} decimals` });
      return z.NEVER;
    }
    if (!BOUND_OK[bound](units)) {
      ctx.addIssue({ code: 'custom', message: `must be ${bound === 'non-zero' ? 'non-zero' : bound}` });
      return z.NEVER;
    }
    if (units > max || units < -max) {
      ctx.addIssue({ code: 'custom', message: `must be at most ${maxUsd} USD` });
      return z.NEVER;
    }
    return units;
  });
}

/** USD → nano-USD. */
export const usdAmount = (bound: Bound) => decimal(9, bound, MAX_AMOUNT_USD);
/** USD per 1M tokens (up to 6 decimals) → micro-USD per 1M tokens. */
const pricePerMillion = decimal(6, 'non-negative', MAX_PRICE_USD);
/** USD per image (up to 9 decimals) → nano-USD. */
const pricePerImage = decimal(9, 'non-negative', MAX_PRICE_USD);

/** The years a stored date may have: DATETIME holds 1000–9999, and mysql2 reads a year below 100 as 19xx/20xx. */
const FIRST_YEAR = 1970;
const LAST_YEAR = 9999;
const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;

/** A real calendar date (no 30 February rolled over into March) in FIRST_YEAR..LAST_YEAR, as a Date. */
function parseIsoDate(text: string): Date | undefined {
  const parts = ISO_DATE.exec(text);
  if (!parts) return undefined;
  const [year, month, day] = parts.slice(1, 4).map(Number);
  const calendarDay = new Date(Date.UTC(2000, month - 1, day));
  calendarDay.setUTCFullYear(year);
  if (calendarDay.getUTCMonth() !== month - 1 || calendarDay.getUTCDate() !== day) return undefined;
  const date = new Date(text);
  const utcYear = date.getUTCFullYear();
  return utcYear >= FIRST_YEAR && utcYear <= LAST_YEAR ? date : undefined;
}

/** An ISO 8601 date or date-time → Date. */
export const isoDate = z
  .string({ error: required('an ISO 8601 date string') })
  // A `+hh:mm` offset sent unencoded in a query string arrives as a space.
  .transform((s, ctx) => {
    const date = parseIsoDate(s.trim().replace(/(T[\d:.]+) (\d{2}:?\d{2})$/, '$1+$2'));
    if (date) return date;
    ctx.addIssue({
      code: 'custom',
      message: `must be a real ISO 8601 date between ${FIRST_YEAR} and ${LAST_YEAR} (e.g. 2030-01-31 or 2030-01-31T12:00:00Z)`,
    });
    return z.NEVER;
  });

const text = (max: number) =>
  z
    .string({ error: required('a string') })
    .trim()
    .min(1, 'must not be empty')
    .max(max, `must be at most ${max} characters`);
const optionalText = (max: number) =>
  z
    .string({ error: required('a string') })
    .trim()
    .max(max, `must be at most ${max} characters`);
const int = (min: number, max: number) =>
  z
    .number({ error: required('an integer') })
    .int('must be an integer')
    .min(min, `must be at least ${min}`)
    .max(max, `must be at most ${max}`);
const bool = z.boolean({ error: required('true or false') });
const oneOf = <const T extends readonly [string, ...string[]]>(values: T) =>
  z.enum(values, { error: (issue) => (issue.input === undefined ? 'is required' : `must be one of ${values.join(', ')}`) });

/** A JSON object body (anything else: "body: must be a JSON object"). */
const body = <T extends z.core.$ZodLooseShape>(shape: T) => z.object(shape, { error: 'must be a JSON object' });

/**
 * A PATCH body: a JSON object of only these fields. A field it does not know is 400 naming it, where a plain
 * body would drop it: a misspelt change would otherwise answer 200 and change nothing.
 */
const patchBody = <T extends z.core.$ZodLooseShape>(shape: T) =>
  z.strictObject(shape, { error: (issue) => (issue.code === 'unrecognized_keys' ? 'unknown field' : 'must be a JSON object') });

const httpUrl = z
  .string({ error: required('an http(s) URL') })
  .trim()
  .max(500, 'must be at most 500 characters')
  .refine((s) => {
    try {
      const url = new URL(s);
      return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '';
    } catch {
      return false;
    }
  }, 'must be an http:// or https:// URL');

// ---- channels and tokens

export const channelBody = body({
  name: text(100),
  type: oneOf(['openai', 'anthropic', 'dashscope']),
  base_url: httpUrl,
});

export const tokenBody = body({
  secret: z
    .string({ error: required('a string') })
    .trim()
    .min(1, 'must not be empty')
    .max(4000, 'is too long'),
  max_concurrency: int(1, 10_000).default(4),
  name: optionalText(100).default(''),
});

export const tokenPatch = patchBody({
  status: oneOf(['active', 'disabled']).optional(),
  max_concurrency: int(1, 10_000).optional(),
});

// ---- models

const SIZE = /^[1-9]\d{1,4}x[1-9]\d{1,4}$/;
const DEFAULT_SIZE = '1024x1024';

/** A public model id: letters, digits and `. _ - / : @ +`, starting with a letter or digit. */
export const modelId = z
  .string()
  .min(1, 'must not be empty')
  .max(191, 'must be at most 191 characters')
  .regex(/^[A-Za-z0-9][\w.:@+/-]*$/, 'may contain only letters, digits and . _ - / : @ +, and must start with a letter or digit');

/** At most this many routes per model. */
export const MAX_ROUTES = 16;

const route = z.object(
  {
    channel_id: rowId,
    upstream_model: text(200),
    /** higher is tried first */
    priority: int(-1_000_000, 1_000_000).default(0),
    /** share of the traffic among routes of one priority; 0: only when no other route of the tier has a free token */
    weight: int(0, 1_000_000).default(1),
  },
  { error: 'must be a JSON object' },
);

export type RouteInput = z.infer<typeof route>;

/**
 * A model (SPEC §5): its upstreams are either `routes` or the older `channel_id` + `upstream_model` (one
 * route). Both may be given when the pair names one of the routes (a model read back from the API and put
 * again as it is). The output always has `routes`; `routesGiven` says which form was used (for messages).
 */
export const modelBody = body({
  display_name: text(200),
  owned_by: text(100),
  modality: oneOf(['chat', 'embedding', 'image']),
  status: oneOf(['active', 'coming_soon', 'disabled']),
  channel_id: rowId.optional(),
  upstream_model: text(200).optional(),
  routes: z
    .array(route, { error: required('an array of routes') })
    .min(1, 'must list at least one route')
    .max(MAX_ROUTES, `must list at most ${MAX_ROUTES} routes`)
    .optional(),
  input_price_per_1m: pricePerMillion.default(0n),
  output_price_per_1m: pricePerMillion.default(0n),
  /** Prompt tokens read from / written to the upstream's prompt cache (SPEC §3); absent or null = the input price. */
  cache_read_price_per_1m: pricePerMillion.nullable().default(null),
  cache_write_price_per_1m: pricePerMillion.nullable().default(null),
  price_per_image: pricePerImage.default(0n),
  max_output_tokens: int(1, 10_000_000).default(4096),
  vision: bool.default(false),
  tools: bool.default(false),
  sizes: z
    .array(z.string().regex(SIZE, 'must be "WxH", e.g. "1024x1024"'), { error: required('an array of "WxH" strings') })
    .min(1, 'must list at least one size')
    .max(50, 'must list at most 50 sizes')
    .refine((sizes) => new Set(sizes).size === sizes.length, 'must not repeat a size')
    .default([DEFAULT_SIZE]),
})
  .superRefine((model, ctx) => {
    if (model.modality === 'image' && !model.sizes.includes(DEFAULT_SIZE)) {
      ctx.addIssue({ code: 'custom', path: ['sizes'], message: `must include "${DEFAULT_SIZE}" (every image model serves it)` });
    }
    if (model.routes === undefined) {
      if (model.channel_id === undefined) ctx.addIssue({ code: 'custom', path: ['channel_id'], message: 'is required (or give routes)' });
      if (model.upstream_model === undefined)
        ctx.addIssue({ code: 'custom', path: ['upstream_model'], message: 'is required (or give routes)' });
      return;
    }
    const seen = new Set<string>();
    model.routes.forEach((r, i) => {
      const key = `${r.channel_id}\u0000${r.upstream_model}`;
      if (seen.has(key))
        ctx.addIssue({ code: 'custom', path: ['routes', i], message: `repeats the route ${r.channel_id} → ${r.upstream_model}` });
      seen.add(key);
    });
    const pairGiven = model.channel_id !== undefined || model.upstream_model !== undefined;
    if (pairGiven && !model.routes.some((r) => r.channel_id === model.channel_id && r.upstream_model === model.upstream_model)) {
      ctx.addIssue({
        code: 'custom',
        path: ['channel_id'],
        message: 'with routes, channel_id and upstream_model must name one of the routes (or be left out)',
      });
    }
  })
  .transform(({ channel_id, upstream_model, routes, ...model }) => ({
    ...model,
    routesGiven: routes !== undefined,
    routes: routes ?? [{ channel_id: channel_id!, upstream_model: upstream_model!, priority: 0, weight: 1 }],
  }));

// ---- users, credit, keys, codes

export const userBody = body({
  email: z
    .string({ error: required('an email address') })
    .trim()
    .toLowerCase()
    .max(254, 'must be at most 254 characters')
    .pipe(z.email({ error: 'must be an email address' })),
  password: z
    .string({ error: required('a string') })
    .min(8, 'must be at least 8 characters')
    .max(200, 'must be at most 200 characters')
    .optional(),
  is_admin: bool.default(false),
});

/** The email of a user search (exact, as stored: trimmed, lower case). */
export const emailParam = z
  .string({ error: 'must be given once' })
  .trim()
  .toLowerCase()
  .min(1, 'must not be empty')
  .max(254, 'must be at most 254 characters');

export const creditBody = body({
  amount_usd: usdAmount('positive'),
  note: optionalText(255).optional(),
});

export const adjustBody = body({
  amount_usd: usdAmount('non-zero'),
  note: text(255),
});

/** A key's `allowed_models`: model ids, `prefix*` patterns (a trailing `*` only) or `*`; null lifts the list. */
const allowedModels = z
  .array(
    z
      .string({ error: required('a model id or a pattern ending in *') })
      .trim()
      .max(192, 'must be at most 192 characters')
      .regex(/^(?:\*|[A-Za-z0-9][\w.:@+/-]*\*?)$/, 'must be a model id, or a model id prefix followed by * (a * only at the end)'),
    { error: required('an array of model ids and patterns, or null') },
  )
  .max(500, 'must list at most 500 models')
  .refine((list) => new Set(list).size === list.length, 'must not repeat an entry');
/** A key's `max_concurrent_requests`; null lifts the limit. */
const maxConcurrent = int(1, 100_000);

export const keyBody = body({
  name: optionalText(100).default(''),
  rpm_limit: int(1, 1_000_000).default(60),
  balance_cap_usd: usdAmount('non-negative').nullable().default(null),
  expires_at: isoDate.nullable().default(null),
  allowed_models: allowedModels.nullable().default(null),
  max_concurrent_requests: maxConcurrent.nullable().default(null),
});

export const keyPatch = patchBody({
  disabled: bool.optional(),
  rpm_limit: int(1, 1_000_000).optional(),
  balance_cap_usd: usdAmount('non-negative').nullable().optional(),
  expires_at: isoDate.nullable().optional(),
  allowed_models: allowedModels.nullable().optional(),
  max_concurrent_requests: maxConcurrent.nullable().optional(),
});

export const codesBody = body({
  amount_usd: usdAmount('positive'),
  count: int(1, 1000),
});

// ---- usage query (string values from the query string)

const queryInt = (min: number, max: number) =>
  z
    .string({ error: 'must be given once, as an integer' })
    .regex(/^\d{1,15}$/, 'must be an integer')
    .transform(Number)
    .refine((n) => n >= min && n <= max, `must be between ${min} and ${max}`);

export const usageQuery = body({
  user_id: queryInt(1, MAX_ID).optional(),
  key_id: queryInt(1, MAX_ID).optional(),
  since: isoDate.optional(),
  before_id: queryInt(1, MAX_ID).optional(),
  limit: queryInt(1, 1000).default(1000),
});

/** `GET /admin/api/users`: one exact email, or newest first, paged with `before_id`. */
export const usersQuery = body({
  email: emailParam.optional(),
  before_id: queryInt(1, MAX_ID).optional(),
  limit: queryInt(1, 1000).default(100),
});

export type ChannelInput = z.infer<typeof channelBody>;
export type TokenInput = z.infer<typeof tokenBody>;
export type TokenPatch = z.infer<typeof tokenPatch>;
export type ModelInput = z.output<typeof modelBody>;
export type UserInput = z.infer<typeof userBody>;
export type CreditInput = z.infer<typeof creditBody>;
export type AdjustInput = z.infer<typeof adjustBody>;
export type KeyInput = z.infer<typeof keyBody>;
export type KeyPatch = z.infer<typeof keyPatch>;
export type CodesInput = z.infer<typeof codesBody>;
export type UsageQuery = z.infer<typeof usageQuery>;
export type UsersQuery = z.infer<typeof usersQuery>;
