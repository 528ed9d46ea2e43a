/**
 * Which call a streamed chat tool-call fragment belongs to, for the translators of a chat stream into another
 * wire format (src/wire/messages/stream.ts, src/wire/responses/stream.ts). OpenAI gives every fragment its
 * call's `index`; some OpenAI-compatible upstreams give none. Then a fragment belongs to the call with its id if
 * it has one (a new id opens a new call), else to the last call.
 */
export type ToolCallKey = number | string;

export function toolCallKeyOf(fragment: { index?: unknown; id?: unknown }, lastKey: ToolCallKey | undefined): ToolCallKey {
  if (typeof fragment.index === 'number') return fragment.index;
  if (typeof fragment.id === 'string' && fragment.id !== '') return `id:${fragment.id}`;
  return lastKey ?? 0;
}
