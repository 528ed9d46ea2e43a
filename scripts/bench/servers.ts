import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { createConnection } from 'mysql2/promise';

/**
 * The benchmark's own MariaDB and Redis servers (on free ports, in a temporary folder), so their CPU time
 * and their statement and command counters belong to the benchmark alone, whatever else the machine runs.
 */
export interface PrivateServers {
  mysqlUrl: string;
  redisUrl: string;
  pids: { mariadbd: number; redis: number };
  /** Server-side counters now: Redis commands (and script calls), SQL statements (and transactions). */
  counters(): Promise<Counters>;
  /** Time Redis spends in each script while `run` runs (see redisTimeByScript). */
  redisTimeByScript(run: () => Promise<unknown>, scriptNames: Map<string, string>): Promise<Record<string, ScriptTime>>;
  stop(): Promise<void>;
}

export interface ScriptTime {
  calls: number;
  usec: number;
}

export interface Counters {
  /** calls per Redis command name (commands run inside scripts included, as Redis counts them) */
  redisByCommand: Record<string, number>;
  redisCommands: number;
  redisScripts: number;
  redisPublish: number;
  sqlStatements: number;
  sqlTransactions: number;
}

async function waitFor(check: () => Promise<unknown>, what: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`${what} did not start: ${(err as Error).message}`);
      await sleep(100);
    }
  }
}

/** `logsDir`: where the servers' own logs go (mariadb.log, redis.log); none by default. */
export async function startPrivateServers(ports: { mysql: number; redis: number }, logsDir?: string): Promise<PrivateServers> {
  const dir = mkdtempSync(join(tmpdir(), 'eastx-bench-'));
  execFileSync(
    'mariadb-install-db',
    ['--no-defaults', `--datadir=${dir}/data`, '--auth-root-authentication-method=normal', '--skip-test-db'],
    {
      stdio: 'ignore',
    },
  );
  const mariadb: ChildProcess = spawn(
    'mariadbd',
    [
      '--no-defaults',
      `--datadir=${dir}/data`,
      `--port=${ports.mysql}`,
      '--bind-address=127.0.0.1',
      `--socket=${dir}/mysql.sock`,
      '--skip-log-bin',
      '--user=root',
      '--max-connections=500',
      ...(logsDir ? [`--log-error=${join(logsDir, 'mariadb.log')}`] : []),
    ],
    { stdio: 'ignore' },
  );
  const redis: ChildProcess = spawn(
    'redis-server',
    [
      '--port',
      String(ports.redis),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      ...(logsDir ? ['--logfile', join(logsDir, 'redis.log')] : []),
    ],
    {
      stdio: 'ignore',
    },
  );
  const mysqlUrl = `mysql://root@127.0.0.1:${ports.mysql}`;
  const redisUrl = `redis://127.0.0.1:${ports.redis}`;
  const probe = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0 });
  probe.on('error', () => undefined); // a refused connect is waitFor's to report, once; commands still reject
  const stop = async () => {
    probe.disconnect();
    redis.kill('SIGTERM');
    mariadb.kill('SIGTERM');
    await sleep(1500);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(async () => (await createConnection(mysqlUrl)).end(), 'mariadbd');
    await waitFor(() => probe.connect(), 'redis-server');
  } catch (err) {
    await stop(); // neither server outlives a bench that could not start
    throw err;
  }

  const counters = async (): Promise<Counters> => {
    const stats = await probe.info('commandstats');
    let redisCommands = 0;
    let redisScripts = 0;
    let redisPublish = 0;
    const redisByCommand: Record<string, number> = {};
    for (const [, name, calls] of stats.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
      // INFO itself is the benchmark's own reading, not the gateway's work
      if (name === 'info') continue;
      redisByCommand[name] = Number(calls);
      redisCommands += Number(calls);
      if (name === 'evalsha' || name === 'eval' || name === 'fcall') redisScripts += Number(calls);
      if (name === 'publish') redisPublish += Number(calls);
    }
    const connection = await createConnection(mysqlUrl);
    const [rows] = (await connection.query(
      "SHOW GLOBAL STATUS WHERE Variable_name IN ('Questions', 'Com_commit', 'Com_show_status')",
    )) as unknown as [Array<{ Variable_name: string; Value: string }>];
    await connection.end();
    const status = Object.fromEntries(rows.map((r) => [r.Variable_name, Number(r.Value)]));
    // Questions counts every statement a client sent (multi-statement scripts: each one), this reading's own SHOW included
    return {
      redisByCommand,
      redisCommands,
      redisScripts,
      redisPublish,
      sqlStatements: status.Questions - status.Com_show_status,
      sqlTransactions: status.Com_commit,
    };
  };

  return {
    mysqlUrl,
    redisUrl,
    pids: { mariadbd: mariadb.pid ?? 0, redis: redis.pid ?? 0 },
    counters,
    redisTimeByScript: (run, scriptNames) => redisTimeByScript(probe, run, scriptNames),
    stop,
  };
}

type SlowlogEntry = [id: number, at: number, usec: number, args: string[]];

/**
 * Where Redis's time goes, script by script: the slow log with a 0 µs threshold records every command with
 * its duration while `run` runs (then the defaults are back). Commands a script calls are logged on their
 * own too, in capitals (scripts call `redis.call('ZADD', …)`, clients send lower case): only the outer ones
 * count. A script is named by `scriptNames` (SHA-1 → name), else it is BullMQ's.
 */
async function redisTimeByScript(
  redis: Redis,
  run: () => Promise<unknown>,
  scriptNames: Map<string, string>,
): Promise<Record<string, ScriptTime>> {
  await redis.config('SET', 'slowlog-max-len', '1000000');
  await redis.slowlog('RESET');
  await redis.config('SET', 'slowlog-log-slower-than', '0');
  try {
    await run();
  } finally {
    await redis.config('SET', 'slowlog-log-slower-than', '10000');
  }
  const entries = (await redis.slowlog('GET', 1_000_000)) as SlowlogEntry[];
  await redis.config('SET', 'slowlog-max-len', '128');
  await redis.slowlog('RESET');
  const times: Record<string, ScriptTime> = {};
  for (const [, , usec, [command, sha]] of entries) {
    if (/[A-Z]/.test(command) || command === 'config' || command === 'slowlog') continue;
    const name = command === 'evalsha' ? (scriptNames.get(sha) ?? 'bullmq') : 'other commands';
    times[name] ??= { calls: 0, usec: 0 };
    times[name].calls++;
    times[name].usec += usec;
  }
  return times;
}

/** CPU seconds (user + system) a process has used so far, from /proc. */
export function cpuSeconds(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** Write and read system calls (sockets, pipes, files) a process has made so far, from /proc/<pid>/io. */
export function syscalls(pid: number | undefined): { writes: number; reads: number } {
  try {
    const io = readFileSync(`/proc/${pid}/io`, 'utf8');
    return { writes: Number(/syscw:\s+(\d+)/.exec(io)?.[1] ?? 0), reads: Number(/syscr:\s+(\d+)/.exec(io)?.[1] ?? 0) };
  } catch {
    return { writes: 0, reads: 0 };
  }
}

export function rssMb(pid: number | undefined): number {
  try {
    return Math.round(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024);
  } catch {
    return 0;
  }
}
