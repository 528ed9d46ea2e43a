import { openaiCompatible } from '../openai/index.js';
import type { Provider } from '../types.js';
import { generateImages } from './task.js';

/** Aliyun DashScope: chat and embeddings through its OpenAI-compatible mode, images through its async task API. */
export const dashscopeProvider: Provider = {
  capabilities: {
    chat: true,
    stream: true,
    tools: true,
    vision: true,
    embeddings: true,
    embeddingTokenInput: false,
    images: true,
    messages: false,
    reasoning: 'enable_thinking',
    responseFormats: ['text', 'json_object', 'json_schema'],
  },
  adapter: {
    ...openaiCompatible((baseUrl) => `${baseUrl}/compatible-mode/v1`),
    images: generateImages,
  },
};
