import type { ApiError } from './errors.js';

/**
 * How a route's errors are written (SPEC §1b): `openai` is SPEC §2's `{"error":{code,message,type,param}}`;
 * `anthropic` is Anthropic's `{"type":"error","error":{type,message,code}}` with the same HTTP statuses,
 * `type` Anthropic's name for the status and `code` the §2 code. The router sets it before the guard runs.
 */
export type ErrorShape = 'openai' | 'anthropic';

const ANTHROPIC_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  402: 'billing_error',
  403: 'permission_error',
  404: 'not_found_error',
  405: 'invalid_request_error',
  413: 'invalid_request_error',
  429: 'rate_limit_error',
  500: 'api_error',
  502: 'api_error',
  503: 'overloaded_error',
  504: 'api_error',
};

/** Anthropic's error type for an HTTP status. */
export const anthropicErrorType = (status: number) => ANTHROPIC_TYPES[status] ?? (status >= 500 ? 'api_error' : 'invalid_request_error');

/** An error in Anthropic's shape; extra fields (`upstream_status`…) stay inside `error`. */
export function anthropicErrorBody(error: ApiError) {
  const { code, message, param, type: _openaiType, ...extra } = error.toJSON().error;
  return {
    type: 'error' as const,
    error: { type: anthropicErrorType(error.status), message, code, ...(param !== null ? { param } : {}), ...extra },
  };
}

/** The error body of a route with this shape. */
export const errorBodyFor = (shape: ErrorShape | undefined, error: ApiError) =>
  shape === 'anthropic' ? anthropicErrorBody(error) : error.toJSON();
