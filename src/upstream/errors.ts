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
/** Below this length a piece of a secret could be an ordinary word; real API keys are far longer. */
const PIECES_FROM_LENGTH = 20;
/** A word holding this many characters in a row of a secret (or of its encodings) is taken for a piece of it. */
const PIECE = 8;

/** Letters and digits only: hyphens, dots or invisible characters put into a secret do not hide it. */
const bare = (text: string) => text.replace(/[^A-Za-z0-9]/g, '');

/** Every run of PIECE characters of the secret and of its base64, base64url and percent-encoded forms, bared. */
function piecesOf(secret: string): Set<string> {
  const forms = [secret, Buffer.from(secret).toString('base64'), Buffer.from(secret).toString('base64url'), encodeURIComponent(secret)];
  const pieces = new Set<string>();
  for (const form of forms.map(bare)) for (let i = 0; i + PIECE <= form.length; i++) pieces.add(form.slice(i, i + PIECE));
  return pieces;
}

/** Whether a word holds a piece of the secret: linear in the word (one set lookup per position). */
function holdsPiece(word: string, pieces: Set<string>): boolean {
  const letters = bare(word);
  for (let i = 0; i + PIECE <= letters.length; i++) if (pieces.has(letters.slice(i, i + PIECE))) return true;
  return false;
}

/**
 * Removes a credential from text that came back from upstream, so it can be shown and logged: the whole
 * secret, any word holding a run of 8 of its characters (or of its base64 or percent-encoded forms; a key split
 * into words or with characters put in between) or its last 4, and any masked key (providers echo a key's ends).
 */
export function scrub(text: string, secret: string): string {
  const long = secret.length >= PIECES_FROM_LENGTH;
  const pieces = long ? piecesOf(secret) : new Set<string>();
  const end = long ? secret.slice(-4) : undefined; // providers echo a key's last 4 characters
  const unsecret = secret.length >= 4 ? text.split(secret).join(REDACTED) : text;
  const piece = (word: string) => MASKED_KEY.test(word) || (end !== undefined && word.includes(end)) || holdsPiece(word, pieces);
  return unsecret.replace(/\S+/g, (word) => (piece(word) ? REDACTED : word));
}

/** Shown up to SHOWN_MESSAGE_CHARS; scrubbed after a first cut, so a huge message costs no more than a long one. */
const shownMessage = (message: string, secret: string) => {
  const scrubbed = scrub(message.slice(0, 2 * SHOWN_MESSAGE_CHARS), secret);
  return message.length > SHOWN_MESSAGE_CHARS || scrubbed.length > SHOWN_MESSAGE_CHARS
    ? `${scrubbed.slice(0, SHOWN_MESSAGE_CHARS)}…`
    : scrubbed;
};

/**
 * An upstream failure as clients and operators may see it: credentials refused (401/403) in eastx's own words,
 * since the token is disabled anyway and customers need no upstream auth detail (SPEC §2); any other message scrubbed
 * and shortened.
 */
export function shownFailure(err: UpstreamError, secret: string): UpstreamError {
  const message = err.credentialsRejected
    ? `the upstream provider refused the gateway's credentials (HTTP ${err.status})`
    : shownMessage(err.message, secret);
  return new UpstreamError(err.failure, message, err.details);
}
