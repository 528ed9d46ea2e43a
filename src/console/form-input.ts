import type { z } from 'zod';
import { describeIssue } from '../http/body.js';
import { badRequest } from '../http/errors.js';

/**
 * Form fields are strings; the admin API's schemas (src/admin/schemas.ts) want JSON types. These helpers turn
 * a field into what the JSON body would have held, so console forms are validated by the very same schemas
 * (same limits, same messages naming the field).
 */

/** '' (an empty input) → undefined: the schema's default applies. */
export const optional = (value: string | undefined) => (value === undefined || value.trim() === '' ? undefined : value);

/** '' → null (e.g. "no cap", "never expires"). */
export const orNull = (value: string | undefined) => (value === undefined || value.trim() === '' ? null : value);

/** An integer field: digits become a number; anything else is passed on for the schema to refuse. */
export function integer(value: string | undefined): number | string | undefined {
  const text = optional(value)?.trim();
  return text !== undefined && /^-?\d{1,15}$/.test(text) ? Number(text) : text;
}

/** A checkbox: present (any value) is true. */
export const checkbox = (value: string | undefined) => value !== undefined;

/**
 * A date input (YYYY-MM-DD, UTC) meaning "through that day": the end of the day, as an ISO time. Anything
 * else is passed on unchanged for the schema to judge (a full ISO time is accepted as is).
 */
export function endOfDay(value: string | undefined): string | null {
  const text = orNull(value)?.trim() ?? null;
  if (text === null || !/^\d{4}-\d{2}-\d{2}$/.test(text)) return text;
  const day = new Date(`${text}T00:00:00Z`);
  // not a real day (30 February): left as typed, for the schema to refuse rather than roll into March
  if (Number.isNaN(day.getTime()) || day.toISOString().slice(0, 10) !== text) return text;
  return new Date(day.getTime() + 86_400_000 - 1).toISOString();
}

/** No control characters in a one-line text field (names, notes, emails). */
export const noControlChars = (field: string, value: string | undefined) => {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
  if (value !== undefined && /[\u0000-\u001f\u007f]/.test(value)) throw badRequest(`${field}: must not contain control characters`);
  return value;
};

/** Validates with a schema; a failure is 400 naming the field, shown on the form. */
export function validate<T extends z.ZodType>(schema: T, input: unknown): z.infer<T> {
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw badRequest(describeIssue(parsed.error));
  return parsed.data;
}
