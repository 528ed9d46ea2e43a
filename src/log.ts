import { pino } from 'pino';

/** JSON logs. Secrets and prompt text are never passed to the logger; redact catches headers that slip in. */
export const log = pino({
  level: process.env.LOG_LEVEL || (process.env.NODE_ENV === 'test' ? 'warn' : 'info'),
  base: { pid: process.pid, role: process.env.EASTX_ROLE },
  redact: ['authorization', 'headers.authorization', 'headers["x-api-key"]', 'secret', 'key', 'password'],
});
