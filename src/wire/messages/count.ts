/** The gateway's own count of a Messages prompt (count_tokens where the channel is not Anthropic). */
import { countChatPromptTokens } from '../../billing/estimate.js';
import type { Json } from '../../upstream/providers/types.js';
import { promptAsChat } from './request.js';

/** Its chat translation counted with a real tokenizer (o200k): an approximation of the upstream model's tokenizer. */
export const countMessagesTokens = (body: Json): number => countChatPromptTokens(promptAsChat(body));
