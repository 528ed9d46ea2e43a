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

/** What stands in for a credential, or for a word of upstream text that carries a piece of one. */
const REDACTED = '[redacted]';
/**
 * A key masked as providers echo a refused one: `sk-ab****wxyz`, `evil-SEC****************zzzz`. Exactly three
 * stars beside a letter or digit: `\*{3,}` there backtracks over every run of stars, quadratic in its length
 * (64 KB of stars took 4 s).
 */
const MASKED_KEY = /[A-Za-z0-9]\*{3}|\*{3}[A-Za-z0-9]/;
/** An upstream's message is shown up to this many characters: enough for any real one, and no 16 MB answer. */
const SHOWN_MESSAGE_CHARS = 2000;
/** Below this length a secret's first 8 and last 4 characters could be ordinary words; real API keys are far longer. */
const PIECES_FROM_LENGTH = 20;

/**
 * Removes a credential from text that came back from upstream, so it can be shown and logged: the whole
 * secret, and any word holding its first 8 or last 4 characters or a masked key (providers echo a key's ends).
 */
export function scrub(text: string, secret: string): string {
  const pieces = secret.length >= PIECES_FROM_LENGTH ? [secret.slice(0, 8), secret.slice(-4)] : [];
  const unsecret = secret.length >= 4 ? text.split(secret).join(REDACTED) : text;
  return unsecret.replace(/\S+/g, (word) => (MASKED_KEY.test(word) || pieces.some((piece) => word.includes(piece)) ? REDACTED : word));
}

const shortened = (message: string) => (message.length > SHOWN_MESSAGE_CHARS ? `${message.slice(0, SHOWN_MESSAGE_CHARS)}…` : message);

/**
 * An upstream failure as clients and operators may see it: credentials refused (401/403) in eastx's own words,
 * since the token is disabled anyway and customers need no upstream auth detail (SPEC §2); any other message scrubbed
 * and shortened.
 */
export function shownFailure(err: UpstreamError, secret: string): UpstreamError {
  const message = err.credentialsRejected
    ? `the upstream provider refused the gateway's credentials (HTTP ${err.status})`
    : shortened(scrub(err.message, secret));
  return new UpstreamError(err.failure, message, err.details);
}
