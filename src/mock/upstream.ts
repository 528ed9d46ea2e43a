/**
 * eastx mock upstream provider: one node:http server speaking
 *   - OpenAI            /v1/chat/completions, /v1/embeddings                 (base_url `<url>/v1`)
 *   - Anthropic         /v1/messages, /v1/messages/count_tokens              (base_url `<url>`)
 *   - DashScope         /compatible-mode/v1/{chat/completions,embeddings},
 *                       /api/v1/services/aigc/text2image/image-synthesis, /api/v1/tasks/{id}   (base_url `<url>`)
 * with per-credential behaviours (latency, failures, hangs, resets, mid-stream faults…) and
 * counters, controlled from JS (this module) or over HTTP under `/__mock/` (control.ts).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { anthropicRoutes } from './anthropic.js';
import { type Behavior, BehaviorStore, type FailSpec } from './behavior.js';
import { handleControl, type MockState, notFound } from './control.js';
import { dashscopeImageRoutes, ImageTaskStore } from './dashscope.js';
import { bearerToken, type Ctx, createCtx, flattenHeaders, headerValue, readBody, sleep } from './http.js';
import { dashscopeCompatRoutes, openaiRoutes } from './openai.js';
import { PromptCache } from './prompt-cache.js';
import type { Provider, Route } from './route.js';
import { type RecordedRequest, RequestLog, type SecretStats, StatsTracker } from './stats.js';

export type { Behavior } from './behavior.js';
export type { RecordedRequest, SecretStats } from './stats.js';

export interface MockUpstream {
  /** e.g. http://127.0.0.1:41234 (no trailing slash) */
  url: string;
  port: number;
  /** stops the server; also destroys open sockets (hanging requests) */
  close(): Promise<void>;
  /** per-credential behaviour (Bearer token for openai/dashscope, x-api-key for anthropic); replaces the previous one */
  setBehavior(secret: string, behavior: Partial<Behavior>): void;
  /** behaviour of every secret without its own; replaces the previous default */
  setDefaultBehavior(behavior: Partial<Behavior>): void;
  /** behaviours, counters and request log back to empty */
  reset(): void;
  stats(secret: string): SecretStats;
  /** every provider request (not `/__mock/` ones), oldest first */
  requests: RecordedRequest[];
  /** resolves once at least `n` requests were recorded; rejects after `timeoutMs` (default 5000) */
  waitForRequests(n: number, timeoutMs?: number): Promise<void>;
}

export interface MockUpstreamOptions {
  /** 0 / undefined = a free port */
  port?: number;
  /** default 127.0.0.1 */
  host?: string;
}

// ---------------------------------------------------------------- request pipeline

function defaultFailMessage(status: number): string {
  if (status === 429) return 'Rate limit exceeded (mock upstream)';
  if (status === 401) return 'Invalid API key (mock upstream)';
  if (status === 529) return 'Overloaded';
  if (status >= 500) return 'Internal server error (mock upstream)';
  return `Mock upstream failure (HTTP ${status})`;
}

function sendFailure(ctx: Ctx, provider: Provider, fail: FailSpec): void {
  const headers = fail.retryAfter !== undefined ? { 'retry-after': fail.retryAfter } : undefined;
  provider.sendError(ctx, fail.status, fail.message ?? defaultFailMessage(fail.status), { headers });
}

/** Latency, then reset / hang / fail. Returns true when the request should be answered normally. */
async function applyFaults(ctx: Ctx, provider: Provider, behaviors: BehaviorStore): Promise<boolean> {
  const { behavior } = ctx;
  await sleep(behavior.latencyMs, ctx.signal);
  if (ctx.signal.aborted) return false;
  if (behavior.reset) {
    ctx.resetConnection();
    return false;
  }
  if (behavior.hang) return false; // the socket stays open until the client leaves or close()
  const fail = behaviors.takeFailure(ctx.secret, behavior);
  if (!fail) return true;
  sendFailure(ctx, provider, fail);
  return false;
}

function findRoute(routes: Route[], method: string, path: string): { route: Route; params: string[] } | undefined {
  for (const route of routes) {
    if (route.method !== method) continue;
    const match = route.pattern.exec(path);
    if (match) return { route, params: match.slice(1).map((p) => p ?? '') };
  }
  return undefined;
}

function publicUrlOf(req: IncomingMessage, fallback: string): string {
  const host = headerValue(req, 'host');
  return host === '' ? fallback : `http://${host}`;
}

class MockServer implements MockState {
  readonly behaviors = new BehaviorStore();
  readonly stats = new StatsTracker();
  readonly log = new RequestLog();
  readonly #routes: Route[];
  url = '';

  readonly #promptCache = new PromptCache();

  constructor() {
    const tasks = new ImageTaskStore();
    const cache = this.#promptCache;
    this.#routes = [...openaiRoutes(cache), ...anthropicRoutes(cache), ...dashscopeCompatRoutes(cache), ...dashscopeImageRoutes(tasks)];
  }

  reset(): void {
    this.#promptCache.clear();
    this.behaviors.reset();
    this.stats.reset();
    this.log.clear();
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://mock.invalid');
    if (url.pathname.startsWith('/__mock/')) return handleControl(this, req, res, url);
    const method = req.method ?? 'GET';
    const found = findRoute(this.#routes, method, url.pathname);
    if (!found) {
      await this.#record(req, url, bearerToken(req) || headerValue(req, 'x-api-key'));
      return notFound(res, method, url.pathname);
    }
    await this.#serve(req, res, url, found.route, found.params);
  }

  async #serve(req: IncomingMessage, res: ServerResponse, url: URL, route: Route, params: string[]): Promise<void> {
    const { provider } = route;
    const secret = provider.secretOf(req);
    const work = route.work !== false;
    const slot = work ? this.stats.begin(secret) : undefined;
    const behavior = this.behaviors.resolve(secret);
    const ctx = createCtx({ req, res, secret, behavior, slot, publicUrl: publicUrlOf(req, this.url) });
    const body = await this.#record(req, url, secret);
    if (secret === '') return provider.sendError(ctx, 401, provider.missingKeyMessage);
    if (route.precheck && !route.precheck(ctx, body.json)) return;
    if (work && !(await applyFaults(ctx, provider, this.behaviors))) return;
    if (body.invalid) return provider.sendError(ctx, 400, 'The request body is not valid JSON.');
    await route.handle(ctx, body.json, params);
  }

  async #record(req: IncomingMessage, url: URL, secret: string): Promise<{ json: unknown; invalid: boolean }> {
    const at = Date.now();
    const body = await readBody(req);
    this.log.add({ at, method: req.method ?? 'GET', path: url.pathname, headers: flattenHeaders(req), body: body.json, secret });
    return body;
  }
}

// ---------------------------------------------------------------- lifecycle

function listen(server: Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

export async function startMockUpstream(opts: MockUpstreamOptions = {}): Promise<MockUpstream> {
  const mock = new MockServer();
  const server = createServer((req, res) => {
    mock.handle(req, res).catch((error: unknown) => {
      if (res.headersSent || res.destroyed) return void res.destroy();
      const text = JSON.stringify({ error: { message: `mock upstream crashed: ${String(error)}`, type: 'server_error' } });
      res.writeHead(500, { 'content-type': 'application/json' }).end(text);
    });
  });
  const address = await listen(server, opts.port ?? 0, opts.host ?? '127.0.0.1');
  mock.url = `http://${urlHost(opts.host ?? '127.0.0.1')}:${address.port}`;
  return {
    url: mock.url,
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
    setBehavior: (secret, behavior) => mock.behaviors.set(secret, behavior),
    setDefaultBehavior: (behavior) => mock.behaviors.setDefault(behavior),
    reset: () => mock.reset(),
    stats: (secret) => mock.stats.get(secret),
    requests: mock.log.requests,
    waitForRequests: (n, timeoutMs = 5000) => mock.log.waitFor(n, timeoutMs),
  };
}
