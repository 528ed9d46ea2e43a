/**
 * HTTP control surface under `/__mock/` — the same controls as the JS API, for a demo operator.
 *   POST /__mock/behavior  {secret?, ...behavior}   (no secret = default behaviour; replaces, does not merge)
 *   GET  /__mock/behavior                           current behaviours
 *   POST /__mock/reset
 *   GET  /__mock/stats?secret=…                     one secret's stats (all secrets without `secret`)
 *   GET  /__mock/requests                           the request log
 *   GET  /__mock/images/<task>/<i>.png              the placeholder image behind DashScope result urls
 *                                                   (?bytes=N: padded to N bytes; ?status=S: that HTTP status)
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Behavior, type BehaviorStore, behaviorPatchSchema } from './behavior.js';
import { isObject, readBody } from './http.js';
import type { RequestLog, StatsTracker } from './stats.js';

export interface MockState {
  behaviors: BehaviorStore;
  stats: StatsTracker;
  log: RequestLog;
  reset(): void;
}

/** A 1×1 PNG. */
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64');

function writeJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function notFound(res: ServerResponse, method: string, path: string): void {
  writeJson(res, 404, { error: { message: `mock upstream: no route for ${method} ${path}`, type: 'not_found_error', code: 'not_found' } });
}

async function setBehavior(state: MockState, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { json, invalid } = await readBody(req);
  if (invalid || !isObject(json))
    return writeJson(res, 400, { error: { message: 'body must be a JSON object', type: 'invalid_request_error' } });
  const { secret, ...rest } = json;
  if (secret !== undefined && typeof secret !== 'string') {
    return writeJson(res, 400, { error: { message: 'secret must be a string', type: 'invalid_request_error' } });
  }
  const parsed = behaviorPatchSchema.safeParse(rest);
  if (!parsed.success) return writeJson(res, 400, { error: { message: parsed.error.message, type: 'invalid_request_error' } });
  const behavior: Partial<Behavior> = parsed.data;
  if (secret === undefined) state.behaviors.setDefault(behavior);
  else state.behaviors.set(secret, behavior);
  writeJson(res, 200, { ok: true, secret: secret ?? null, behavior });
}

type ControlHandler = (state: MockState, req: IncomingMessage, res: ServerResponse, url: URL) => Promise<void> | void;

const CONTROL_ROUTES: Array<{ method: string; pattern: RegExp; handle: ControlHandler }> = [
  { method: 'POST', pattern: /^\/__mock\/behavior$/, handle: setBehavior },
  { method: 'GET', pattern: /^\/__mock\/behavior$/, handle: (state, _req, res) => writeJson(res, 200, state.behaviors.snapshot()) },
  {
    method: 'POST',
    pattern: /^\/__mock\/reset$/,
    handle: async (state, req, res) => {
      await readBody(req);
      state.reset();
      writeJson(res, 200, { ok: true });
    },
  },
  {
    method: 'GET',
    pattern: /^\/__mock\/stats$/,
    handle: (state, _req, res, url) => {
      const secret = url.searchParams.get('secret');
      writeJson(res, 200, secret === null ? state.stats.all() : state.stats.get(secret));
    },
  },
  { method: 'GET', pattern: /^\/__mock\/requests$/, handle: (state, _req, res) => writeJson(res, 200, state.log.requests) },
  {
    method: 'GET',
    pattern: /^\/__mock\/images\/[^/]+\/\d+\.png$/,
    handle: (_state, _req, res, url) => {
      const status = Number(url.searchParams.get('status') ?? 200);
      if (status !== 200) return writeJson(res, status, { error: { message: `mock image download answers ${status}` } });
      // `bytes`: the PNG padded to that size (a large image for download caps)
      const size = Math.max(PNG.length, Number(url.searchParams.get('bytes') ?? 0));
      const image = size > PNG.length ? Buffer.concat([PNG, Buffer.alloc(size - PNG.length)]) : PNG;
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': image.length });
      res.end(image);
    },
  },
];

/** Answers a `/__mock/…` request. */
export async function handleControl(state: MockState, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const method = req.method ?? 'GET';
  for (const route of CONTROL_ROUTES) {
    if (route.method === method && route.pattern.test(url.pathname)) return route.handle(state, req, res, url);
  }
  notFound(res, method, url.pathname);
}
