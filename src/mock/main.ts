/**
 * Runs the mock upstream as a process (for the demo):
 *   MOCK_PORT (default 4010), MOCK_HOST (default 127.0.0.1)
 * Prints its URL on stdout, stops on SIGTERM / SIGINT.
 */
import { startMockUpstream } from './upstream.js';

const port = Number(process.env.MOCK_PORT ?? 4010);
const host = process.env.MOCK_HOST ?? '127.0.0.1';
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`MOCK_PORT must be a port number, got ${process.env.MOCK_PORT ?? ''}`);
  process.exit(1);
}

const mock = await startMockUpstream({ port, host });
console.log(mock.url);
console.error(
  [
    `eastx mock upstream listening on ${mock.url}`,
    `  openai    base_url ${mock.url}/v1`,
    `  anthropic base_url ${mock.url}`,
    `  dashscope base_url ${mock.url}`,
    `  control   POST ${mock.url}/__mock/behavior | POST /__mock/reset | GET /__mock/stats?secret=`,
  ].join('\n'),
);

let stopping = false;
async function stop(signal: NodeJS.Signals): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.error(`mock upstream: ${signal}, closing`);
  await mock.close();
  process.exit(0);
}
process.on('SIGTERM', (signal) => void stop(signal));
process.on('SIGINT', (signal) => void stop(signal));
