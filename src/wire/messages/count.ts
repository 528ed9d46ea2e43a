/** The gateway's own count of a Messages prompt (count_tokens where the channel is not Anthropic, and the hold). */
import { countChatPromptTokens, estimateChatPromptTokens, IMAGE_PART_TOKENS, TokenCounter, withMargin } from '../../billing/estimate.js';
import type { Json } from '../../upstream/providers/types.js';
import { blocksOf, carriedOver, promptAsChat } from './request.js';

/**
 * A document the gateway cannot read (a URL or a Files API id, e.g. a PDF): it may fill a whole Claude context
 * window, so the hold covers that much.
 */
const UNSEEN_DOCUMENT_TOKENS = 200_000;

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

function blockTokens(counter: TokenCounter, block: Json): number {
  if (block.type === 'image') return IMAGE_PART_TOKENS;
  const source = isObject(block.source) ? block.source : undefined;
  if (block.type === 'document' && (source?.type === 'url' || source?.type === 'file')) return UNSEEN_DOCUMENT_TOKENS;
  return counter.countJson(block);
}

/**
 * What the chat translation leaves out of a Messages prompt (`carriedOver`), and a tool result's parts other
 * than text. An Anthropic channel gets the body as it is and bills them, so the hold must cover them (SPEC §3:
 * an upper bound of what the upstream counts); each is counted from its JSON (a base64 PDF by its base64 text),
 * an image as IMAGE_PART_TOKENS, a document the gateway cannot read as UNSEEN_DOCUMENT_TOKENS.
 */
function untranslatedTokens(body: Json): number {
  const counter = new TokenCounter();
  let tokens = 0;
  for (const block of blocksOf(body.system)) if (block.type !== 'text') tokens += blockTokens(counter, block);
  for (const message of blocksOf(body.messages)) {
    for (const block of blocksOf(message.content)) {
      if (!carriedOver(block)) tokens += blockTokens(counter, block);
      else if (block.type === 'tool_result')
        for (const part of blocksOf(block.content)) if (part.type !== 'text') tokens += blockTokens(counter, part);
    }
  }
  return tokens;
}

/** Its chat translation counted with a real tokenizer (o200k), an approximation of the upstream model's, plus what the translation drops. */
export const countMessagesTokens = (body: Json): number => countChatPromptTokens(promptAsChat(body)) + untranslatedTokens(body);

/** The hold's upper bound of a Messages prompt: the chat translation's, plus what the translation drops. */
export const estimateMessagesPromptTokens = (body: Json): number =>
  estimateChatPromptTokens(promptAsChat(body)) + withMargin(untranslatedTokens(body));
