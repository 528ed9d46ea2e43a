import type { ChannelType } from '../../db/schema.js';
import { openaiAdapter } from './openai.js';
import type { ProviderAdapter } from './types.js';

const adapters: Partial<Record<ChannelType, ProviderAdapter>> = {
  openai: openaiAdapter,
};

export function adapterFor(type: ChannelType): ProviderAdapter | undefined {
  return adapters[type];
}
