import { ApiError } from '../http/errors.js';

/**
 * Why a worker aborts a job's upstream call: its deadline passed, its client disconnected (the web side
 * published a cancel), the web process that owned it is gone (nobody listens on its relay channel),
 * another worker process runs the job (this delivery started so late that BullMQ had handed it over):
 * a superseded run leaves the request, its money and its relay to that one; or the worker is stopping
 * (SIGTERM) and the call outlasted its drain time.
 */
export type AbortReason = 'timeout' | 'cancelled' | 'listener-gone' | 'superseded' | 'shutdown';

export function abortJob(controller: AbortController, reason: AbortReason): void {
  controller.abort({ abortReason: reason });
}

/** The reason a job's signal was aborted with, once it was. */
export function abortReasonOf(signal: AbortSignal): AbortReason | undefined {
  return signal.aborted ? ((signal.reason as { abortReason?: AbortReason } | undefined)?.abortReason ?? 'cancelled') : undefined;
}

/**
 * The SPEC §2 answer of an aborted call: past the deadline → 504; cut by a restart of a worker or of the web
 * process relaying it → 502 (the client retries); a cancelled one (nobody reads it) → 502.
 */
export function abortError(reason: AbortReason): ApiError {
  if (reason === 'timeout') return new ApiError('upstream_timeout', 'the upstream did not answer before the deadline');
  const message = reason === 'shutdown' ? 'the request was interrupted by a gateway restart; please retry' : 'the request was cancelled';
  return new ApiError('upstream_error', message, { fields: { upstream_status: 0 } });
}
