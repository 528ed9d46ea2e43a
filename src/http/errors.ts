/** The SPEC §2 error table, in one place. Every failure leaves the gateway as one of these. */
export const ERRORS = {
  bad_request: { status: 400, type: 'invalid_request_error' },
  wrong_endpoint: { status: 400, type: 'invalid_request_error' },
  missing_key: { status: 401, type: 'authentication_error' },
  invalid_key: { status: 401, type: 'authentication_error' },
  insufficient_balance: { status: 402, type: 'billing_error' },
  cap_reached: { status: 402, type: 'billing_error' },
  disabled: { status: 403, type: 'permission_error' },
  expired: { status: 403, type: 'permission_error' },
  forbidden: { status: 403, type: 'permission_error' },
  model_not_allowed: { status: 403, type: 'permission_error' },
  model_not_found: { status: 404, type: 'invalid_request_error' },
  not_found: { status: 404, type: 'invalid_request_error' },
  method_not_allowed: { status: 405, type: 'invalid_request_error' },
  request_too_large: { status: 413, type: 'invalid_request_error' },
  rate_limit_exceeded: { status: 429, type: 'rate_limit_error' },
  internal_error: { status: 500, type: 'server_error' },
  upstream_unreachable: { status: 502, type: 'upstream_error' },
  upstream_error: { status: 502, type: 'upstream_error' },
  upstream_unavailable: { status: 503, type: 'upstream_error' },
  upstream_timeout: { status: 504, type: 'upstream_error' },
} as const;

export type ErrorCode = keyof typeof ERRORS;

export interface ErrorBody {
  code: ErrorCode;
  message: string;
  type: string;
  /** The offending request field (`"messages"`, `"n"`…) or null, as in OpenAI's ErrorResponse. */
  param: string | null;
  [extra: string]: unknown;
}

export class ApiError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Extra fields inside `error` (e.g. `upstream_status`), a `Retry-After` in seconds, the offending field. */
    readonly extra: { fields?: Record<string, unknown>; retryAfter?: number; param?: string | null } = {},
  ) {
    super(message);
    this.status = ERRORS[code].status;
  }

  toJSON(): { error: ErrorBody } {
    return {
      error: {
        code: this.code,
        message: this.message,
        type: ERRORS[this.code].type,
        param: this.extra.param ?? null,
        ...this.extra.fields,
      },
    };
  }

  /** Plain data that survives a trip through Redis (worker → web). */
  toWire(): WireError {
    return {
      code: this.code,
      message: this.message,
      fields: this.extra.fields,
      retryAfter: this.extra.retryAfter,
      param: this.extra.param ?? null,
    };
  }

  static fromWire(wire: WireError): ApiError {
    const code = wire.code in ERRORS ? wire.code : 'internal_error';
    return new ApiError(code, wire.message, { fields: wire.fields, retryAfter: wire.retryAfter, param: wire.param });
  }
}

export interface WireError {
  code: ErrorCode;
  message: string;
  fields?: Record<string, unknown>;
  retryAfter?: number;
  param?: string | null;
}

/**
 * 400 bad_request. `param` is the offending field; by default the path before the message's first colon
 * ("messages.0.content: …" → "messages.0.content"), since every such message starts with the field.
 */
export const badRequest = (message: string, param: string | null = fieldOf(message)) => new ApiError('bad_request', message, { param });

function fieldOf(message: string): string | null {
  const field = /^([A-Za-z_][\w.[\]-]*):/.exec(message)?.[1];
  return field && field !== 'body' ? field : null;
}
