import type { UpstreamToken } from '../src/catalog/catalog.js';
import type { Connections } from '../src/runtime.js';
import type { TokenPool } from '../src/upstream/pool.js';

/** What job processors share inside one worker process. */
export interface WorkerContext extends Connections {
  pool: TokenPool;
  /** This process's name in run claims (./run-claim.ts). */
  workerId: string;
}

const opened = new Map<string, string>();

/** The plain secret of a token, decrypted once per sealed value and kept only in this process's memory. */
export function tokenSecret(ctx: WorkerContext, token: UpstreamToken): string {
  let plain = opened.get(token.secretEnc);
  if (plain === undefined) {
    plain = ctx.secrets.open(token.secretEnc);
    opened.set(token.secretEnc, plain);
  }
  return plain;
}
