import type { Readable } from 'node:stream';
import { Agent, request } from 'undici';

/** How a chat stream that fails after its 200 says so (SPEC §2: one SSE error event, then the end). */
const SSE_ERROR = 'data: {"error"';

/**
 * Whether a stream's first data event (in `text`, read so far) is a chunk rather than an error event: one that
 * relayed a chunk is billed for what it produced, whatever came after it; one whose first event is an error
 * produced nothing and costs nothing. Undefined while no data event has come.
 */
function startedWithChunk(text: string): boolean | undefined {
  const first = text.indexOf('data: ');
  return first < 0 ? undefined : !text.startsWith(SSE_ERROR, first);
}

/** What one HTTP request of the load looks like. */
export interface Target {
  url: string;
  headers: Record<string, string>;
  body: string;
}

export const agent = (connections: number) => new Agent({ keepAliveTimeout: 60_000, connections, pipelining: 1 });

/** Sends one request, reads the whole answer; resolves with its status. */
async function send(target: Target, dispatcher: Agent): Promise<number> {
  const res = await request(target.url, { method: 'POST', headers: target.headers, body: target.body, dispatcher });
  await res.body.arrayBuffer();
  return res.statusCode;
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

export interface LatencyRun {
  ok: number;
  errors: number;
  latencies: number[];
  seconds: number;
  /** The request ids (`x-request-id`) of the successes, where the run keeps them (streams: each must be billed). */
  ids?: string[];
  /** The open loop's requests in the order they were scheduled: when each should have gone, how late it went, how long it took. */
  timeline?: ScheduledRequest[];
}

export interface ScheduledRequest {
  /** the scheduled send time, epoch ms (to line up with other processes' clocks and logs) */
  scheduledAt: number;
  /** how long after its scheduled time the client sent it: the load generator's own lag */
  sendLagMs: number;
  /** from the scheduled time to the answer's end (or the error) */
  latencyMs: number;
  /** the HTTP status, 0 for a failed connection */
  status: number;
}

/** One request at a time. */
export async function sequential(target: Target, count: number): Promise<LatencyRun> {
  const dispatcher = agent(1);
  const latencies: number[] = [];
  let errors = 0;
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    const status = await send(target, dispatcher).catch(() => 0);
    if (status === 200) latencies.push(performance.now() - started);
    else errors++;
  }
  const seconds = (performance.now() - t0) / 1000;
  await dispatcher.close();
  return { ok: latencies.length, errors, latencies, seconds };
}

/**
 * Open loop: requests start on a fixed schedule whatever the answers do, and each latency counts from its
 * scheduled start (no coordinated omission: a stalled server makes the waiting requests' latency grow).
 */
export async function openLoop(target: Target, ratePerSecond: number, seconds: number): Promise<LatencyRun> {
  const dispatcher = agent(512);
  const total = Math.round(ratePerSecond * seconds);
  const interval = 1000 / ratePerSecond;
  const t0 = performance.now();
  const epochAtT0 = Date.now();
  const timeline = new Array<ScheduledRequest>(total);
  const inFlight: Array<Promise<void>> = [];
  for (let i = 0; i < total; i++) {
    const scheduled = t0 + i * interval;
    const wait = scheduled - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const sendLagMs = performance.now() - scheduled;
    const done = (status: number) => {
      timeline[i] = { scheduledAt: Math.round(epochAtT0 + i * interval), sendLagMs, latencyMs: performance.now() - scheduled, status };
    };
    inFlight.push(send(target, dispatcher).then(done, () => done(0)));
  }
  await Promise.all(inFlight);
  const elapsed = (performance.now() - t0) / 1000;
  await dispatcher.close();
  const latencies = timeline.filter((r) => r.status === 200).map((r) => r.latencyMs);
  return { ok: latencies.length, errors: total - latencies.length, latencies, seconds: elapsed, timeline };
}

/** Closed loop: `connections` clients each send the next request as soon as the last one answered. */
export async function closedLoop(target: Target, connections: number, seconds: number): Promise<LatencyRun> {
  const dispatcher = agent(connections);
  const latencies: number[] = [];
  let errors = 0;
  const until = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < until) {
        const started = performance.now();
        const status = await send(target, dispatcher).catch(() => 0);
        if (status === 200) latencies.push(performance.now() - started);
        else errors++;
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  await dispatcher.close();
  return { ok: latencies.length, errors, latencies, seconds: elapsed };
}

/** Starts `count` streams at once; resolves with each one's time to its first data event (ms). */
export async function streamStarts(target: Target, count: number): Promise<LatencyRun> {
  const dispatcher = agent(count);
  let errors = 0;
  const ids: string[] = [];
  const t0 = performance.now();
  const latencies = (
    await Promise.all(
      Array.from({ length: count }, async () => {
        const started = performance.now();
        try {
          const res = await request(target.url, { method: 'POST', headers: target.headers, body: target.body, dispatcher });
          let first: number | undefined;
          let text = '';
          for await (const piece of res.body) {
            text += String(piece);
            if (first === undefined && text.includes('data: ')) first = performance.now() - started;
          }
          if (res.statusCode !== 200 || first === undefined || !startedWithChunk(text)) {
            errors++;
            return undefined;
          }
          ids.push(String(res.headers['x-request-id']));
          return first;
        } catch {
          errors++;
          return undefined;
        }
      }),
    )
  ).filter((v): v is number => v !== undefined);
  const seconds = (performance.now() - t0) / 1000;
  await dispatcher.close();
  return { ok: latencies.length, errors, latencies, seconds, ids };
}

/** Resolves true at a stream's first chunk, false if it ends, fails or sends an error event first; leaves it open. */
function firstEvent(body: Readable): Promise<boolean> {
  return new Promise((resolve) => {
    let seen = '';
    const done = (opened: boolean) => {
      body.off('data', onData).off('end', onEnd).off('error', onEnd);
      resolve(opened);
    };
    const onData = (piece: Buffer) => {
      seen += String(piece);
      const chunk = startedWithChunk(seen);
      if (chunk !== undefined) done(chunk);
    };
    const onEnd = () => done(false);
    body.on('data', onData).once('end', onEnd).once('error', onEnd);
  });
}

/**
 * Opens `count` streams that the upstream holds open after their first chunk; `close()` ends them all. `ids`:
 * the request ids of the open ones, each billed for what it produced once closed.
 */
export async function holdStreams(target: Target, count: number): Promise<{ open: number; ids: string[]; close(): Promise<void> }> {
  const dispatcher = agent(count);
  const controllers: AbortController[] = [];
  const ids: string[] = [];
  await Promise.all(
    Array.from({ length: count }, async () => {
      const controller = new AbortController();
      controllers.push(controller);
      try {
        const res = await request(target.url, {
          method: 'POST',
          headers: target.headers,
          body: target.body,
          dispatcher,
          signal: controller.signal,
        });
        if (res.statusCode !== 200) {
          await res.body.dump();
          return;
        }
        // wait for the first data event, then leave the body open (paused) until close()
        if (!(await firstEvent(res.body))) return; // ended, or failed, before its first chunk
        res.body.pause();
        ids.push(String(res.headers['x-request-id']));
      } catch {
        // counted as not open
      }
    }),
  );
  return {
    open: ids.length,
    ids,
    async close() {
      for (const c of controllers) c.abort();
      await dispatcher.destroy().catch(() => undefined);
    },
  };
}
