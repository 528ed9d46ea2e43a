/** What the gateway relies on in Anthropic's answers and stream events (checked as they are read: ../shapes.ts). */
import { z } from 'zod';
import { jsonObject, reportedUsage, tokenCount } from '../shapes.js';

/** Anthropic repeats some counts as null in message_delta. */
const usage = z.looseObject({
  input_tokens: tokenCount.nullish(),
  output_tokens: tokenCount.nullish(),
  cache_creation_input_tokens: tokenCount.nullish(),
  cache_read_input_tokens: tokenCount.nullish(),
});

/** A message: content blocks (objects) and usage; usage that is not token counts is none (the gateway counts). */
export const anthropicMessage = z.looseObject({
  id: z.string().optional(),
  content: z.array(jsonObject).optional(),
  usage: reportedUsage(usage),
});

/**
 * A stream event. Its usage must be token counts: a stream's usage comes in parts (message_start, then
 * message_delta), and one part dropped would bill as if the other were all, so a bad part is a malformed event.
 */
export const anthropicEvent = z.looseObject({
  type: z.string(),
  message: z.looseObject({ id: z.string().optional(), usage: usage.nullish() }).optional(),
  usage: usage.nullish(),
});

export const countedTokens = z.looseObject({ input_tokens: tokenCount });
