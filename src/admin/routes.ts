import type { z } from 'zod';
import { describeIssue, parseBody } from '../http/body.js';
import { badRequest } from '../http/errors.js';
import type { Route } from '../http/router.js';
import { type AppContext, principal } from '../http/state.js';
import * as ops from './operations/index.js';
import * as schemas from './schemas.js';

/** Admin bodies are small; this keeps a stray upload from being buffered. */
const BODY_LIMIT = 1024 * 1024;

const body = <T extends z.ZodType>(ctx: AppContext, schema: T) => parseBody(ctx, schema, BODY_LIMIT);

function query<T extends z.ZodType>(ctx: AppContext, schema: T): z.infer<T> {
  const parsed = schema.safeParse(ctx.query);
  if (!parsed.success) throw badRequest(describeIssue(parsed.error));
  return parsed.data;
}

const id = (ctx: AppContext, what: string) => ops.rowIdFrom(ctx.params.id, what);

/** A `*id` wildcard: the router hands over the decoded path rest (`smoke%2Fchat-1` → `smoke/chat-1`). */
const modelIdParam = (ctx: AppContext) => {
  const raw = ctx.params.id as string | string[];
  return Array.isArray(raw) ? raw.join('/') : raw;
};

function send(ctx: AppContext, payload: unknown, status = 200): void {
  ctx.status = status;
  ctx.body = payload;
}

/** An admin API route: operator guard; the handler only parses and answers, ./operations.ts does the work. */
const admin = (method: Route['method'], path: string, handle: (ctx: AppContext) => Promise<void>): Route => ({
  method,
  path: `/admin/api${path}`,
  guard: 'operator',
  handle: (ctx) => {
    principal(ctx, 'operator');
    return handle(ctx);
  },
});

/** The admin API of SPEC §5 (404 everywhere while ADMIN_TOKEN is unset: the operator guard says so). */
export const adminRoutes: Route[] = [
  admin('GET', '/channels', async (ctx) => send(ctx, { data: await ops.listChannels(ctx.services) })),
  admin('POST', '/channels', async (ctx) => send(ctx, await ops.createChannel(ctx.services, await body(ctx, schemas.channelBody)), 201)),
  admin('POST', '/channels/:id/tokens', async (ctx) => {
    const channelId = id(ctx, 'channel');
    send(ctx, await ops.addToken(ctx.services, channelId, await body(ctx, schemas.tokenBody)), 201);
  }),
  admin('PATCH', '/tokens/:id', async (ctx) => {
    const tokenId = id(ctx, 'token');
    send(ctx, await ops.updateToken(ctx.services, tokenId, await body(ctx, schemas.tokenPatch)));
  }),

  admin('GET', '/models', async (ctx) => send(ctx, { data: await ops.listModels(ctx.services) })),
  admin('PUT', '/models/*id', async (ctx) =>
    send(ctx, await ops.putModel(ctx.services, modelIdParam(ctx), await body(ctx, schemas.modelBody))),
  ),

  admin('GET', '/users', async (ctx) => send(ctx, await ops.listUsers(ctx.services, query(ctx, schemas.usersQuery)))),
  admin('POST', '/users', async (ctx) => send(ctx, await ops.createUser(ctx.services, await body(ctx, schemas.userBody)), 201)),
  admin('GET', '/users/:id', async (ctx) => send(ctx, await ops.getUser(ctx.services, id(ctx, 'user')))),
  admin('POST', '/users/:id/credit', async (ctx) => {
    const userId = id(ctx, 'user');
    send(ctx, await ops.creditUser(ctx.services, userId, await body(ctx, schemas.creditBody)));
  }),
  admin('POST', '/users/:id/adjust', async (ctx) => {
    const userId = id(ctx, 'user');
    send(ctx, await ops.adjustUser(ctx.services, userId, await body(ctx, schemas.adjustBody)));
  }),
  admin('GET', '/users/:id/keys', async (ctx) => send(ctx, { data: await ops.listUserKeys(ctx.services, id(ctx, 'user')) })),
  admin('POST', '/users/:id/keys', async (ctx) => {
    const userId = id(ctx, 'user');
    send(ctx, await ops.createKey(ctx.services, userId, await body(ctx, schemas.keyBody)), 201);
  }),

  admin('GET', '/keys/:id', async (ctx) => send(ctx, await ops.getKey(ctx.services, id(ctx, 'key')))),
  admin('PATCH', '/keys/:id', async (ctx) => {
    const keyId = id(ctx, 'key');
    send(ctx, await ops.updateKey(ctx.services, keyId, await body(ctx, schemas.keyPatch)));
  }),
  admin('DELETE', '/keys/:id', async (ctx) => send(ctx, await ops.revokeKey(ctx.services, id(ctx, 'key')))),

  admin('POST', '/redemption-codes', async (ctx) =>
    send(ctx, await ops.createRedemptionCodes(ctx.services, await body(ctx, schemas.codesBody)), 201),
  ),
  admin('GET', '/usage', async (ctx) => send(ctx, await ops.listUsage(ctx.services, query(ctx, schemas.usageQuery)))),
];
