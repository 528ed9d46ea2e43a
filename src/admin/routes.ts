import { createHash, timingSafeEqual } from 'node:crypto';
import Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import type { z } from 'zod';
import { describeIssue, parseBody } from '../http/body.js';
import { ApiError, badRequest } from '../http/errors.js';
import type { WebServices } from '../services.js';
import * as ops from './operations.js';
import * as schemas from './schemas.js';

/** Admin bodies are small; this keeps a stray upload from being buffered. */
const BODY_LIMIT = 1024 * 1024;

const digest = (text: string) => createHash('sha256').update(text).digest();

/** `Authorization: Bearer $ADMIN_TOKEN`, compared in constant time (both sides hashed to equal length). */
function adminAuth(adminToken: string): Middleware {
  const expected = digest(adminToken);
  return async (ctx, next) => {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(ctx.get('authorization').trim());
    if (!match) throw new ApiError('unauthorized', 'admin API: send Authorization: Bearer $ADMIN_TOKEN');
    if (!timingSafeEqual(digest(match[1]), expected)) throw new ApiError('unauthorized', 'admin API: invalid admin token');
    await next();
  };
}

const body = <T extends z.ZodType>(ctx: Context, schema: T) => parseBody(ctx, schema, BODY_LIMIT);

function query<T extends z.ZodType>(ctx: Context, schema: T): z.infer<T> {
  const parsed = schema.safeParse(ctx.query);
  if (!parsed.success) throw badRequest(describeIssue(parsed.error));
  return parsed.data;
}

const id = (ctx: Context, what: string) => ops.rowIdFrom(ctx.params.id, what);

/** A `*id` wildcard: the router hands over the decoded path rest (`smoke%2Fchat-1` → `smoke/chat-1`). */
const modelIdParam = (ctx: Context) => {
  const raw = ctx.params.id as string | string[];
  return Array.isArray(raw) ? raw.join('/') : raw;
};

function send(ctx: Context, payload: unknown, status = 200): void {
  ctx.status = status;
  ctx.body = payload;
}

/**
 * The admin API of SPEC §5 under `/admin/api`. Handlers only parse and answer; the work is in
 * ./operations.ts, which the CLI calls too. Without ADMIN_TOKEN the admin API is off: every path is 404.
 */
export function adminRouter(svc: WebServices): Router {
  const router = new Router({ prefix: '/admin' });
  const token = svc.config.adminToken;
  if (!token) return router;
  router.use(adminAuth(token));

  router.get('/api/channels', async (ctx) => send(ctx, { data: await ops.listChannels(svc) }));
  router.post('/api/channels', async (ctx) => send(ctx, await ops.createChannel(svc, await body(ctx, schemas.channelBody)), 201));
  router.post('/api/channels/:id/tokens', async (ctx) => {
    const channelId = id(ctx, 'channel');
    send(ctx, await ops.addToken(svc, channelId, await body(ctx, schemas.tokenBody)), 201);
  });
  router.patch('/api/tokens/:id', async (ctx) => {
    const tokenId = id(ctx, 'token');
    send(ctx, await ops.updateToken(svc, tokenId, await body(ctx, schemas.tokenPatch)));
  });

  router.get('/api/models', async (ctx) => send(ctx, { data: await ops.listModels(svc) }));
  router.put('/api/models/*id', async (ctx) => send(ctx, await ops.putModel(svc, modelIdParam(ctx), await body(ctx, schemas.modelBody))));

  router.post('/api/users', async (ctx) => send(ctx, await ops.createUser(svc, await body(ctx, schemas.userBody)), 201));
  router.get('/api/users/:id', async (ctx) => send(ctx, await ops.getUser(svc, id(ctx, 'user'))));
  router.post('/api/users/:id/credit', async (ctx) => {
    const userId = id(ctx, 'user');
    send(ctx, await ops.creditUser(svc, userId, await body(ctx, schemas.creditBody)));
  });
  router.post('/api/users/:id/adjust', async (ctx) => {
    const userId = id(ctx, 'user');
    send(ctx, await ops.adjustUser(svc, userId, await body(ctx, schemas.adjustBody)));
  });
  router.get('/api/users/:id/keys', async (ctx) => send(ctx, { data: await ops.listUserKeys(svc, id(ctx, 'user')) }));
  router.post('/api/users/:id/keys', async (ctx) => {
    const userId = id(ctx, 'user');
    send(ctx, await ops.createKey(svc, userId, await body(ctx, schemas.keyBody)), 201);
  });

  router.get('/api/keys/:id', async (ctx) => send(ctx, await ops.getKey(svc, id(ctx, 'key'))));
  router.patch('/api/keys/:id', async (ctx) => {
    const keyId = id(ctx, 'key');
    send(ctx, await ops.updateKey(svc, keyId, await body(ctx, schemas.keyPatch)));
  });
  router.delete('/api/keys/:id', async (ctx) => send(ctx, await ops.revokeKey(svc, id(ctx, 'key'))));

  router.post('/api/redemption-codes', async (ctx) => send(ctx, await ops.createRedemptionCodes(svc, await body(ctx, schemas.codesBody)), 201));
  router.get('/api/usage', async (ctx) => send(ctx, await ops.listUsage(svc, query(ctx, schemas.usageQuery))));
  return router;
}
