/**
 * The shapes of upstream answers, checked where they are read (./http.ts). Only what the gateway relies on is
 * checked: objects are not walked beyond it and unknown fields pass, so the check stays cheap on large answers.
 * Anything else is a 502 "malformed upstream answer" with the upstream's HTTP status, never a crash.
 */
import { z } from 'zod';
import { MAX_TOKEN_COUNT } from '../../billing/money.js';
import { UpstreamError } from '../errors.js';

export function checkedAnswer<S extends z.ZodType>(shape: S, json: unknown, status: number): z.output<S> {
  const result = shape.safeParse(json);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const where = issue && issue.path.length > 0 ? ` at ${issue.path.join('.')}` : '';
  throw new UpstreamError('protocol', `malformed upstream answer${where}: ${issue?.message ?? 'unexpected shape'}`, { status });
}

/** Any JSON object, its fields unchecked. */
export const jsonObject = z.looseObject({});

/** A chat message or a chunk's delta: tool calls, where present, are objects (the translations read their fields). */
const chatPart = z.looseObject({ tool_calls: z.array(jsonObject).nullish() }).nullish();
/** A chat answer's or chunk's choices: objects, with their message or delta as above. */
export const chatChoices = z.array(z.looseObject({ message: chatPart, delta: chatPart }));

/** A reported token count: a finite number, not negative; absurd ones clamped to what the ledger can hold. */
export const tokenCount = z
  .number()
  .nonnegative()
  .transform((n) => Math.min(n, MAX_TOKEN_COUNT));

/**
 * Usage whose counts are not token counts is no usage: the gateway counts instead, marked estimated (SPEC §3),
 * rather than bill nothing or fail on what the upstream wrote.
 */
export const reportedUsage = <S extends z.ZodType>(usage: S) => usage.optional().catch(undefined);

/** OpenAI's usage (chat answers and chunks), its total filled in where missing. */
export const chatUsage = z
  .looseObject({ prompt_tokens: tokenCount, completion_tokens: tokenCount, total_tokens: tokenCount.optional() })
  .transform((usage) => ({ ...usage, total_tokens: usage.total_tokens ?? usage.prompt_tokens + usage.completion_tokens }));
