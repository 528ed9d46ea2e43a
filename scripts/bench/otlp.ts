import { createServer } from 'node:http';

interface OtlpSpan {
  name: string;
  startTimeUnixNano: string | number;
  endTimeUnixNano: string | number;
}
interface OtlpTraces {
  resourceSpans?: Array<{ scopeSpans?: Array<{ spans?: OtlpSpan[] }> }>;
}

/** A span as the receiver keeps it: how long it took and when it ended (ms since the epoch). */
export interface ReceivedSpan {
  ms: number;
  endedAt: number;
}

/**
 * A minimal OTLP/HTTP (JSON) trace receiver: what an operator's collector would get when
 * OTEL_EXPORTER_OTLP_ENDPOINT points at it. Collects spans by name.
 */
export async function startTraceReceiver(): Promise<{ endpoint: string; spans: Map<string, ReceivedSpan[]>; close(): Promise<void> }> {
  const spans = new Map<string, ReceivedSpan[]>();
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      try {
        const traces = JSON.parse(Buffer.concat(parts).toString()) as OtlpTraces;
        for (const resource of traces.resourceSpans ?? []) {
          for (const scope of resource.scopeSpans ?? []) {
            for (const span of scope.spans ?? []) {
              const end = BigInt(span.endTimeUnixNano);
              const received = { ms: Number(end - BigInt(span.startTimeUnixNano)) / 1e6, endedAt: Number(end / 1000n) / 1000 };
              const named = spans.get(span.name);
              if (named) named.push(received);
              else spans.set(span.name, [received]);
            }
          }
        }
      } catch {
        // not JSON: ignored
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return { endpoint: `http://127.0.0.1:${port}`, spans, close: () => new Promise((r) => server.close(() => r())) };
}
