import type { Channel } from '../../catalog/catalog.js';
import type { ChannelType } from '../../db/schema.js';
import { translationProblem } from '../../wire/messages/request.js';
import { anthropicProvider } from './anthropic/index.js';
import { dashscopeProvider } from './dashscope/index.js';
import { openaiProvider } from './openai/index.js';
import type { Capabilities, Json, Provider, ResponseFormat } from './types.js';

/** The one switch on channel type. */
const PROVIDERS: Record<ChannelType, Provider> = {
  openai: openaiProvider,
  anthropic: anthropicProvider,
  dashscope: dashscopeProvider,
};

export function providerFor(type: ChannelType): Provider {
  return PROVIDERS[type];
}

/** What a request asks of a channel: its endpoint, and for chat the body (checked by the provider). */
export type Demand =
  | { kind: 'chat'; body: Json }
  /** Anthropic's Messages API: served natively or translated to chat (SPEC §1b) */
  | { kind: 'messages'; body: Json }
  | { kind: 'embeddings'; tokenInput: boolean }
  | { kind: 'images' };

/**
 * Why a channel cannot serve this request, as [field, message] for a 400, or undefined when it can.
 * The web asks before holding money or enqueueing anything.
 */
export function unservable(channel: Channel, demand: Demand): [string, string] | undefined {
  const provider = providerFor(channel.type);
  const can = (capability: keyof Capabilities) => provider.capabilities[capability];
  switch (demand.kind) {
    case 'chat': {
      if (!can('chat')) return ['model', 'this model does not serve chat completions'];
      const format = demand.body.response_format;
      const formats = provider.capabilities.responseFormats;
      if (format != null && formats !== 'forwarded') {
        const type = typeof format === 'object' ? (format as Json).type : undefined;
        if (!formats.includes(type as ResponseFormat)) {
          const offered = formats.join(', ');
          return ['response_format.type', `must be one of ${offered} for this model (got ${JSON.stringify(type ?? null)})`];
        }
      }
      return provider.chatRequestProblem?.(demand.body);
    }
    case 'messages':
      if (!can('chat')) return ['model', 'this model does not serve chat'];
      return can('messages') ? undefined : translationProblem(demand.body);
    case 'embeddings':
      if (!can('embeddings')) return ['model', 'this model does not serve embeddings'];
      return demand.tokenInput && !can('embeddingTokenInput')
        ? ['input', 'this model takes text only; send strings, not token arrays']
        : undefined;
    case 'images':
      return can('images') ? undefined : ['model', 'this model does not generate images'];
  }
}
