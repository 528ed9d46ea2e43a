import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { LOG_FLUSH_MS } from '../../src/log.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  return port;
}

export interface RunningProcess {
  role: 'web' | 'worker';
  child: ChildProcess;
  output: () => string;
  /** SIGKILL, and wait for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

function startProcess(role: 'web' | 'worker', env: Record<string, string>): RunningProcess {
  const script = role === 'web' ? 'dist/src/web.js' : 'dist/workers/worker.js';
  const child = spawn(process.execPath, [script], {
    cwd: ROOT,
    env: { ...process.env, ...env, EASTX_ROLE: role },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (d) => (output = (output + d).slice(-200_000)));
  child.stderr?.on('data', (d) => (output = (output + d).slice(-200_000)));
  return {
    role,
    child,
    output: () => output,
    async kill(signal = 'SIGKILL') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill(signal);
      await exited;
    },
  };
}

async function waitHealthy(url: string, web: RunningProcess): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (web.child.exitCode !== null) throw new Error(`web exited: ${web.output()}`);
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
  throw new Error(`web did not become healthy: ${web.output()}`);
}

/**
 * The log lines of `processes` so far, read once what they logged has reached stdout (they write it in
 * blocks, at most LOG_FLUSH_MS late: src/log.ts) and, with `until`, once it holds (or 10 s went by).
 */
export async function logsOf(processes: RunningProcess[], until: (lines: string[]) => boolean = () => true): Promise<string[]> {
  await sleep(3 * LOG_FLUSH_MS);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const lines = processes.flatMap((p) => p.output().split('\n'));
    if (until(lines) || Date.now() > deadline) return lines;
    await sleep(50);
  }
}

export interface Gateway {
  /** base URLs of the web processes (no trailing slash) */
  urls: string[];
  webs: RunningProcess[];
  workers: RunningProcess[];
  addWorker(): RunningProcess;
  stop(): Promise<void>;
}

/**
 * Runs the built web and worker entries as separate OS processes (`npm run build` first; `npm test` does).
 * `webEnv` overrides `env` for the web processes only (e.g. a Redis reached through a proxy).
 */
export async function startGateway(
  env: Record<string, string>,
  counts: { webs?: number; workers?: number; webEnv?: Record<string, string> } = {},
): Promise<Gateway> {
  const webs: RunningProcess[] = [];
  const urls: string[] = [];
  for (let i = 0; i < (counts.webs ?? 1); i++) {
    const port = await freePort();
    const web = startProcess('web', { ...env, ...counts.webEnv, PORT: String(port) });
    webs.push(web);
    urls.push(`http://127.0.0.1:${port}`);
  }
  const workers = Array.from({ length: counts.workers ?? 1 }, () => startProcess('worker', env));
  try {
    await Promise.all(urls.map((url, i) => waitHealthy(url, webs[i])));
  } catch (err) {
    // nobody will stop processes of a gateway that never started: do it here
    await Promise.all([...webs, ...workers].map((p) => p.kill('SIGKILL')));
    throw err;
  }
  return {
    urls,
    webs,
    workers,
    addWorker() {
      const worker = startProcess('worker', env);
      workers.push(worker);
      return worker;
    },
    async stop() {
      await Promise.all([...webs, ...workers].map((p) => p.kill('SIGTERM')));
    },
  };
}
