import getRawBody from 'raw-body';
import { ApiError, badRequest } from '../http/errors.js';
import type { AppContext } from '../http/state.js';

/** Console forms are small: a few short fields. */
const FORM_LIMIT_BYTES = 64 * 1024;
/** The model form has the most: 13 fields and up to 16 routes of 4. */
const MAX_FIELDS = 100;

/**
 * Reads an `application/x-www-form-urlencoded` body (UTF-8 only) into plain fields, once per request.
 * Anything else (another type or charset, a field given twice, too many fields, over 64 KB) is a contract
 * answer (400/413), never a 500. Decoding is the WHATWG URLSearchParams parser.
 */
export async function readForm(ctx: AppContext): Promise<Record<string, string>> {
  if (ctx.state.form) return ctx.state.form;
  if (!ctx.is('application/x-www-form-urlencoded')) throw badRequest('body: a form (application/x-www-form-urlencoded) is expected');
  const charset = ctx.request.charset;
  if (charset && charset.toLowerCase() !== 'utf-8') throw badRequest('body: forms are read as UTF-8 only');
  let text: string;
  try {
    text = await getRawBody(ctx.req, { limit: FORM_LIMIT_BYTES, encoding: 'utf8', length: ctx.get('content-length') || undefined });
  } catch (err) {
    if ((err as { type?: string }).type === 'entity.too.large')
      throw new ApiError('request_too_large', `form over the ${FORM_LIMIT_BYTES} byte limit`);
    throw badRequest('could not read the request body');
  }
  const form: Record<string, string> = Object.create(null) as Record<string, string>;
  let count = 0;
  for (const [name, value] of new URLSearchParams(text)) {
    if (++count > MAX_FIELDS) throw badRequest('body: too many form fields');
    if (Object.hasOwn(form, name)) throw badRequest(`${name.slice(0, 40)}: given more than once`);
    form[name] = value;
  }
  ctx.state.form = form;
  return form;
}
