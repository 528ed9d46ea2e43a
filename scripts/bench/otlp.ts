import { createServer } from 'node:http';

interface OtlpSpan {
  name: string;
  startTimeUnixNano: string | number;
  endTimeUnixNano: string | number;
}
interface OtlpTraces {
  resourceSpans?: Array<{ scopeSpans?: Array<{ spans?: OtlpSpan[] }> }>;
}

/**
 * A minimal OTLP/HTTP (JSON) trace receiver: what an operator's collector would get when
 * OTEL_EXPORTER_OTLP_ENDPOINT points at it. Collects span durations by name.
 */
export async function startTraceReceiver(): Promise<{ endpoint: string; durations: Map<string, number[]>; close(): Promise<void> }> {
  const durations = new Map<string, number[]>();
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      try {
        const traces = JSON.parse(Buffer.concat(parts).toString()) as OtlpTraces;
        for (const resource of traces.resourceSpans ?? []) {
          for (const scope of resource.scopeSpans ?? []) {
            for (const span of scope.spans ?? []) {
              const ms = Number(BigInt(span.endTimeUnixNano) - BigInt(span.startTimeUnixNano)) / 1e6;
              durations.set(span.name, [...(durations.get(span.name) ?? []), ms]);
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
  return { endpoint: `http://127.0.0.1:${port}`, durations, close: () => new Promise((r) => server.close(() => r())) };
}
