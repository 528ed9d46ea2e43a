import { createServer } from 'node:http';
import { createApp } from './app.js';
import { config } from './config.js';
import { log } from './log.js';
import { createWebServices } from './services.js';

/** Web process entry (Procfile `web`): the Koa app on $PORT, drained on SIGTERM. */
async function main(): Promise<void> {
  const cfg = config();
  const svc = await createWebServices(cfg);
  const app = createApp(svc);
  const server = createServer(app.callback());
  server.keepAliveTimeout = 65_000;
  server.listen(cfg.port, () => log.info({ port: cfg.port }, 'web listening'));

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'web stopping');
    server.close();
    server.closeIdleConnections();
    const deadline = Date.now() + 25_000;
    while (svc.relay.openCount > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    server.closeAllConnections();
    await svc.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((err) => {
  log.fatal({ err: { message: (err as Error).message } }, 'web failed to start');
  process.exit(1);
});
