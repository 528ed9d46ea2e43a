import type { Config } from '../../src/config.js';
import { type MockUpstream, startMockUpstream } from '../../src/mock/upstream.js';
import { AdminClient } from './admin.js';
import { freshEnvironment } from './env.js';
import { type Gateway, startGateway } from './gateway.js';

/** The mock upstream, a fresh database and the gateway's web and worker processes on them. */
export interface Bed {
  mock: MockUpstream;
  gateway: Gateway;
  /** The fresh environment, without the `env` overrides the processes got. */
  env: Record<string, string>;
  /** The configuration that environment gives (its Redis prefix, say). */
  config: Config;
  /** The first web process's base URL. */
  url: string;
  /** The admin API on the first web process. */
  admin: AdminClient;
  /** Stops the gateway's processes, then the mock upstream. */
  stop(): Promise<void>;
}

/**
 * Starts a bed for one test file. `name` names its database: one per file, as ava runs files in parallel.
 * `env` is added to the processes' environment; `webs` and `workers` default to one each.
 */
export async function startBed(
  name: string,
  options: { env?: Record<string, string>; webs?: number; workers?: number } = {},
): Promise<Bed> {
  const { env: overrides, ...counts } = options;
  const mock = await startMockUpstream();
  try {
    const { env, config } = await freshEnvironment(name);
    const gateway = await startGateway({ ...env, ...overrides }, counts);
    const url = gateway.urls[0];
    return {
      mock,
      gateway,
      env,
      config,
      url,
      admin: new AdminClient(url, env.ADMIN_TOKEN),
      async stop() {
        await gateway.stop();
        await mock.close();
      },
    };
  } catch (err) {
    // no bed to stop: the caller never gets one
    await mock.close();
    throw err;
  }
}
