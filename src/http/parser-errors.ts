import { type Server, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { ApiError } from './errors.js';
import { newRequestId } from './track-request.js';

/** A response of this connection already under way: raw bytes written now would corrupt it. */
const answering = (socket: Duplex) => (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true;

function errorOf(err: NodeJS.ErrnoException): ApiError {
  if (err.code === 'HPE_HEADER_OVERFLOW') return new ApiError('request_too_large', 'the request headers are too large');
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return new ApiError('bad_request', 'the request did not arrive in full in time');
  return new ApiError(
    'bad_request',
    'the request is not valid HTTP/1.1 (a header holds a character HTTP does not allow, or the framing is broken)',
  );
}

/**
 * Requests Node's HTTP parser refuses before any middleware sees them (a control character in a header,
 * headers past Node's 16 KB, a request not complete in time) get SPEC §2's JSON error and an `x-request-id`,
 * not Node's bare status line: 413 `request_too_large` for oversized headers, else 400 `bad_request`. The
 * connection closes after it, as Node's own answer does.
 */
export function answerParserErrors(server: Server): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (err.code === 'ECONNRESET' || !socket.writable || answering(socket)) {
      socket.destroy();
      return;
    }
    const error = errorOf(err);
    const body = JSON.stringify(error.toJSON());
    socket.end(
      `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status]}\r\n` +
        'content-type: application/json; charset=utf-8\r\n' +
        `content-length: ${Buffer.byteLength(body)}\r\n` +
        `x-request-id: ${newRequestId()}\r\n` +
        `connection: close\r\n\r\n${body}`,
    );
  });
}
