import { Agent, interceptors, request } from 'undici';
import { UpstreamError } from './errors.js';
import { transportFailure } from './providers/http.js';

/**
 * Downloads of what an upstream produced (image URLs), for answers that carry the bytes (`b64_json`). Every
 * download is capped: undici's `maxResponseSize` aborts a body past the cap while it streams, and a
 * Content-Length above it is refused before reading. Up to 3 redirects are followed. The caller's signal
 * (the job's deadline, a cancel) aborts it.
 */
export interface Downloaded {
  bytes: Buffer;
  contentType: string | undefined;
}

const agents = new Map<number, ReturnType<Agent['compose']>>();

function agentFor(maxBytes: number) {
  let agent = agents.get(maxBytes);
  if (!agent) {
    agent = new Agent({ keepAliveTimeout: 10_000, maxResponseSize: maxBytes, headersTimeout: 0, bodyTimeout: 0 }).compose(
      interceptors.redirect({ maxRedirections: 3 }),
    );
    agents.set(maxBytes, agent);
  }
  return agent;
}

const tooLarge = (maxBytes: number) =>
  new UpstreamError(
    'protocol',
    `a produced image is larger than the ${Math.round(maxBytes / 1024 / 1024)} MiB eastx delivers as b64_json`,
    {
      status: 200,
    },
  );

export async function download(url: string, maxBytes: number, signal: AbortSignal): Promise<Downloaded> {
  if (!/^https?:\/\//i.test(url))
    throw new UpstreamError('protocol', 'the upstream produced an image without an http(s) URL', { status: 200 });
  let response: Awaited<ReturnType<typeof request>>;
  try {
    response = await request(url, { method: 'GET', signal, dispatcher: agentFor(maxBytes) });
  } catch (err) {
    throw transportFailure(err, signal);
  }
  const header = (name: string) => {
    const value = response.headers[name];
    return Array.isArray(value) ? value[0] : value;
  };
  if (response.statusCode < 200 || response.statusCode >= 300) {
    await response.body.dump().catch(() => undefined);
    throw new UpstreamError('http', `downloading a produced image answered HTTP ${response.statusCode}`, { status: response.statusCode });
  }
  if (Number(header('content-length') ?? 0) > maxBytes) {
    response.body.destroy();
    throw tooLarge(maxBytes);
  }
  try {
    return { bytes: Buffer.from(await response.body.arrayBuffer()), contentType: header('content-type') };
  } catch (err) {
    if ((err as { code?: string }).code === 'UND_ERR_RES_EXCEEDED_MAX_SIZE') throw tooLarge(maxBytes);
    throw transportFailure(err, signal);
  }
}
