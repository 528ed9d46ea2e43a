import { type Context, context, propagation, ROOT_CONTEXT, type Span, trace } from '@opentelemetry/api';

/**
 * Tracing spans of one request's stages (admission, enqueue, queue pickup, lease, upstream, settle, relay
 * back), through @opentelemetry/api. They go anywhere only when OTEL_EXPORTER_OTLP_ENDPOINT is set: then
 * an SDK exports them over OTLP/HTTP, as operators expect from a gateway; otherwise every span is the API's
 * no-op and costs next to nothing. The trace crosses the queue in job data (W3C traceparent, no secret).
 */
const tracer = trace.getTracer('eastx');

export type TraceCarrier = Record<string, string>;

/**
 * Starts exporting if OTEL_EXPORTER_OTLP_ENDPOINT is set; returns a flush for shutdown. The SDK is loaded
 * only then (its modules take a noticeable part of a process's start-up).
 */
export async function startTelemetry(service: string): Promise<() => Promise<void>> {
  if (!process.env.OTEL_EXPORTER_OTLP_ENDPOINT) return async () => undefined;
  const [{ W3CTraceContextPropagator }, { OTLPTraceExporter }, { resourceFromAttributes }, { BasicTracerProvider, BatchSpanProcessor }] =
    await Promise.all([
      import('@opentelemetry/core'),
      import('@opentelemetry/exporter-trace-otlp-http'),
      import('@opentelemetry/resources'),
      import('@opentelemetry/sdk-trace-base'),
    ]);
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': service }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
  });
  trace.setGlobalTracerProvider(provider);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  return () => provider.shutdown();
}

/** A span of one stage; `startTime` (epoch ms) for a stage that began before this process saw it. */
export function startStage(name: string, parent: Context = ROOT_CONTEXT, startTime?: number): Span {
  return tracer.startSpan(name, startTime === undefined ? {} : { startTime }, parent);
}

/** A stage that already ended, from its start and end times (epoch ms). */
export function recordStage(name: string, parent: Context, startTime: number, endTime = Date.now()): void {
  tracer.startSpan(name, { startTime }, parent).end(endTime);
}

export const contextWith = (span: Span): Context => trace.setSpan(ROOT_CONTEXT, span);

/** The span's trace as job data; undefined when tracing is off (the no-op span has no sampled trace). */
export function carrierOf(span: Span): TraceCarrier | undefined {
  if (!span.isRecording()) return undefined;
  const carrier: TraceCarrier = {};
  propagation.inject(contextWith(span), carrier);
  return carrier;
}

/** The context of a trace carried in job data (the root context without one). */
export function contextFrom(carrier: TraceCarrier | undefined): Context {
  return carrier ? propagation.extract(context.active(), carrier) : ROOT_CONTEXT;
}
