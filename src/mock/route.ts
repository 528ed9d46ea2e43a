/** The shape every provider module of the mock upstream plugs into. */
import type { IncomingMessage } from 'node:http';
import type { Ctx } from './http.js';

export interface ErrorOptions {
  headers?: Record<string, string> | undefined;
  /** provider-specific error type/code overriding the one derived from the status */
  type?: string | undefined;
}

export interface Provider {
  readonly name: 'openai' | 'dashscope' | 'dashscope-native' | 'anthropic';
  /** the credential identifying the caller ("" when none was sent) */
  secretOf(req: IncomingMessage): string;
  /** message of the 401 answered when no credential was sent */
  readonly missingKeyMessage: string;
  /** answers `status` in this provider's own error JSON shape */
  sendError(ctx: Ctx, status: number, message: string, opts?: ErrorOptions): void;
}

export interface Route {
  method: 'GET' | 'POST';
  /** matched against the pathname; capture groups become `params` */
  pattern: RegExp;
  provider: Provider;
  /**
   * Work routes (default) are counted in stats (calls, inFlight…) and are subject to the
   * behaviour's faults (latency, hang, reset, fail). Status polls are not work.
   */
  work?: boolean;
  /** route-specific checks that run before behaviour faults (e.g. required headers); return false when answered */
  precheck?: (ctx: Ctx, body: unknown) => boolean;
  handle(ctx: Ctx, body: unknown, params: string[]): Promise<void> | void;
}
