import { createServer } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { createApp } from './app.js';
import { config } from './config.js';
import { log } from './log.js';
import { runProcess, stopOnSignal } from './runtime.js';
import { createWebServices } from './services.js';
import { startTelemetry } from './telemetry.js';

/** How long open requests may finish after SIGTERM. */
const DRAIN_MS = 25_000;

/** Web process entry (Procfile `web`): the Koa app on $PORT, drained on SIGTERM. */
runProcess('web', async () => {
  const cfg = config();
  const flushTraces = await startTelemetry('eastx-web');
  const svc = await createWebServices(cfg);
  const server = createServer(createApp(svc).callback());
  server.keepAliveTimeout = 65_000;
  server.listen(cfg.port, () => log.info({ port: cfg.port }, 'web listening'));

  stopOnSignal('web', async () => {
    server.close();
    server.closeIdleConnections();
    const deadline = Date.now() + DRAIN_MS;
    while (svc.relay.openCount > 0 && Date.now() < deadline) await sleep(100);
    server.closeAllConnections();
    await svc.close();
    await flushTraces();
  });
});
