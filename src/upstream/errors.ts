import { ApiError } from '../http/errors.js';
import { abortError } from '../queue/abort.js';

/** How an upstream call failed; the pool turns it into a cooldown, the web side into the SPEC §2 code. */
/** `first_byte_timeout`: nothing usable came back within UPSTREAM_FIRST_BYTE_MS (the job itself goes on elsewhere). */
export type UpstreamFailure =
  | 'http'
  | 'connect'
  | 'timeout'
  | 'first_byte_timeout'
  | 'cancelled'
  /** cut by the worker's shutdown (SIGTERM) */
  | 'interrupted'
  | 'protocol'
  | 'task_failed';

export class UpstreamError extends Error {
  constructor(
    readonly failure: UpstreamFailure,
    message: string,
    readonly details: { status?: number; providerCode?: string; retryAfterMs?: number } = {},
  ) {
    super(message);
  }

  get status(): number | undefined {
    return this.details.status;
  }

  /** 429 and Anthropic's 529: cool the token down at once. */
  get rateLimited(): boolean {
    return this.status === 429 || this.status === 529;
  }

  /** Errors another token of the channel might not have. */
  get retryable(): boolean {
    if (this.failure === 'connect' || this.failure === 'first_byte_timeout') return true;
    if (this.failure !== 'http' || this.status === undefined) return false;
    return this.rateLimited || this.status >= 500 || this.status === 401 || this.status === 403;
  }

  get credentialsRejected(): boolean {
    return this.status === 401 || this.status === 403;
  }

  toApiError(): ApiError {
    switch (this.failure) {
      case 'connect':
        return new ApiError('upstream_unreachable', 'could not connect to the upstream provider');
      case 'timeout':
      case 'first_byte_timeout':
        return abortError('timeout');
      case 'cancelled':
        return abortError('cancelled');
      case 'interrupted':
        return abortError('shutdown');
      case 'task_failed':
        return new ApiError('upstream_error', this.message, { fields: { upstream_status: 200, upstream_code: this.details.providerCode } });
      default:
        return new ApiError('upstream_error', this.message, { fields: { upstream_status: this.status ?? 502 } });
    }
  }
}

/** `Retry-After` as seconds or an HTTP date → ms (undefined when absent or unreadable). */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.ceil(seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** Removes a credential from text that came back from upstream, so it can be shown and logged. */
export function scrub(text: string, secret: string): string {
  return secret.length >= 4 ? text.split(secret).join('***') : text;
}
