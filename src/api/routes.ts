import type { Route } from '../http/router.js';
import { createChatCompletion } from './chat.js';
import { createEmbeddings } from './embeddings.js';
import { createImages } from './images.js';
import { listModels, retrieveModel } from './models.js';

/** The public API of SPEC §1: every route needs a live customer key. */
export const apiRoutes: Route[] = [
  { method: 'GET', path: '/v1/models', guard: 'customer', handle: listModels },
  { method: 'GET', path: '/v1/models/*id', guard: 'customer', handle: retrieveModel },
  { method: 'POST', path: '/v1/chat/completions', guard: 'customer', handle: createChatCompletion },
  { method: 'POST', path: '/v1/embeddings', guard: 'customer', handle: createEmbeddings },
  { method: 'POST', path: '/v1/images/generations', guard: 'customer', handle: createImages },
];
