import type { ChannelType } from '../../db/schema.js';
import { anthropicAdapter } from './anthropic.js';
import { dashscopeAdapter } from './dashscope.js';
import { openaiAdapter } from './openai.js';
import type { ProviderAdapter } from './types.js';

const adapters: Partial<Record<ChannelType, ProviderAdapter>> = {
  openai: openaiAdapter,
  anthropic: anthropicAdapter,
  dashscope: dashscopeAdapter,
};

export function adapterFor(type: ChannelType): ProviderAdapter | undefined {
  return adapters[type];
}
