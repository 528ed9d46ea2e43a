import type { Route } from '../http/router.js';
import { admission, admissionWithoutHold, rateLimit } from './admission.js';
import { chatDoor, createChatCompletion } from './chat.js';
import { createEmbeddings, embeddingsDoor } from './embeddings.js';
import { createImages, imagesDoor } from './images.js';
import { countMessageTokens, countTokensDoor, createMessage, messagesDoor } from './messages.js';
import { listModels, modelFromPath, retrieveModel } from './models.js';
import { createResponse, responseFromPath, responsesDoor, retrieveResponse } from './responses.js';

/** The public API of SPEC §1: a live customer key, then admission in SPEC §2 order, then the handler. */
export const apiRoutes: Route[] = [
  { method: 'GET', path: '/v1/models', guard: 'customer', handle: [rateLimit, listModels] },
  { method: 'GET', path: '/v1/models/*id', guard: 'customer', handle: [modelFromPath, rateLimit, retrieveModel] },
  { method: 'POST', path: '/v1/chat/completions', guard: 'customer', handle: [...admission(chatDoor), createChatCompletion] },
  // Anthropic's Messages API (SPEC §1b): Anthropic's error shape, the key also in x-api-key
  { method: 'POST', path: '/v1/messages', guard: 'customer', errors: 'anthropic', handle: [...admission(messagesDoor), createMessage] },
  {
    method: 'POST',
    path: '/v1/messages/count_tokens',
    guard: 'customer',
    errors: 'anthropic',
    handle: [...admissionWithoutHold(countTokensDoor), countMessageTokens],
  },
  { method: 'POST', path: '/v1/embeddings', guard: 'customer', handle: [...admission(embeddingsDoor), createEmbeddings] },
  { method: 'POST', path: '/v1/responses', guard: 'customer', handle: [...admission(responsesDoor), createResponse] },
  { method: 'GET', path: '/v1/responses/:id', guard: 'customer', handle: [responseFromPath, rateLimit, retrieveResponse] },
  { method: 'POST', path: '/v1/images/generations', guard: 'customer', handle: [...admission(imagesDoor), createImages] },
];
