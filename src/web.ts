import { createServer } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { createApp } from './app.js';
import { config } from './config.js';
import { answerParserErrors } from './http/parser-errors.js';
import { log } from './log.js';
import { runProcess, stopOnSignal } from './runtime.js';
import { createWebServices } from './services.js';
import { startTelemetry } from './telemetry.js';

/** How long open requests may finish after SIGTERM. */
const DRAIN_MS = 22_000;
/**
 * How long the requests still open then have to answer their restart error (a non-stream one found already
 * charged waits up to 3 s for its answer instead) and to flush it, inside Heroku's 30 s.
 */
const INTERRUPT_MS = 4_000;

/** Polls `done` every 50 ms (running `meanwhile` first each time) until it holds or `ms` passed. */
async function waitUntil(done: () => boolean, ms: number, meanwhile: () => void): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done() && Date.now() < deadline) {
    meanwhile();
    await sleep(50);
  }
}

/** Web process entry (Procfile `web`): the Koa app on $PORT, drained on SIGTERM. */
runProcess('web', async () => {
  const cfg = config();
  const flushTraces = await startTelemetry('eastx-web');
  const svc = await createWebServices(cfg);
  const server = createServer(createApp(svc).callback());
  server.keepAliveTimeout = 65_000;
  answerParserErrors(server);
  server.listen(cfg.port, () => log.info({ port: cfg.port }, 'web listening'));

  stopOnSignal('web', async () => {
    let closed = false;
    server.close(() => (closed = true)); // called once every connection ended
    svc.stopping = true; // answers close their connections from now on (src/http/close-when-stopping.ts)
    const closeIdle = () => server.closeIdleConnections();
    await waitUntil(() => svc.relay.openCount === 0, DRAIN_MS, closeIdle);
    // requests still open get the restart's error (an SSE error event after the 200) instead of a cut
    // connection (the openai SDK raises a bare "terminated"); their jobs are cancelled, streams billed for
    // what they produced
    svc.relay.interruptAll();
    await waitUntil(() => closed, INTERRUPT_MS, closeIdle);
    server.closeAllConnections();
    await svc.close();
    await flushTraces();
  });
});
