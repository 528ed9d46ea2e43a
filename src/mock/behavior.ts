/**
 * Behaviour knobs of the mock upstream: what each credential (secret) gets back.
 *
 * Resolution: built-in defaults <- default behaviour <- the secret's own behaviour.
 * `setBehavior` / `setDefaultBehavior` REPLACE the previous override (they do not merge),
 * so a test states the whole behaviour it wants in one call.
 */
import { z } from 'zod';

export interface FailSpec {
  status: number;
  retryAfter?: string | undefined;
  message?: string | undefined;
  /** how many requests fail before the secret behaves normally again (default: forever) */
  times?: number | undefined;
}

export interface ImageFailSpec {
  code: string;
  message: string;
}

export interface Behavior {
  /** delay before the response head (default 0) */
  latencyMs: number;
  /** delay between streamed chunks (default 0) */
  chunkDelayMs: number;
  /** answer this HTTP error (in the provider's own error shape) `times` times, then behave normally */
  fail?: FailSpec | undefined;
  /** accept the request and never answer (until the client goes away or close()) */
  hang?: boolean | undefined;
  /** destroy the socket without answering */
  reset?: boolean | undefined;
  /** streaming: destroy the socket after N content chunks */
  midStreamResetAfter?: number | undefined;
  /** streaming: after the first content chunk send the provider's in-stream error and end */
  midStreamError?: boolean | undefined;
  /** assistant text (default: `Hello! You said: <last user text>`) */
  reply?: string | undefined;
  /** answer without usage (stream and non-stream) */
  omitUsage?: boolean | undefined;
  /** OpenAI chat: refuse with this text (`refusal`, content null; streamed as `refusal` deltas), tools or not */
  refusal?: string | undefined;
  /** OpenAI-shaped chat streams: tool-call fragments carry no `index` (as some OpenAI-compatible upstreams send them) */
  toolCallsWithoutIndex?: boolean | undefined;
  /** tool calls take no arguments, `{}` (Anthropic streams it as one `partial_json: ""`, as Claude does) */
  emptyToolInput?: boolean | undefined;
  /**
   * OpenAI chat: a tool call is made this many times at once (the same call, ids told apart); streamed, all
   * their headers come first, then their argument fragments in turn, as some OpenAI-compatible upstreams send them
   */
  interleavedToolCalls?: number | undefined;
  /** DashScope images: polls answering PENDING/RUNNING before the final state (default 2) */
  imageTaskPolls?: number | undefined;
  /** DashScope images: the task ends FAILED with this code/message */
  imageFail?: ImageFailSpec | undefined;
  /** DashScope images: SUCCEEDED with this many results (default n); fewer = partial result */
  imagesProduced?: number | undefined;
  /** DashScope images: the result URLs serve an image of this many bytes (default: a 1×1 PNG), or this HTTP status */
  imageDownload?: { bytes?: number | undefined; status?: number | undefined } | undefined;
}

export const BUILTIN_BEHAVIOR: Readonly<Behavior> = Object.freeze({ latencyMs: 0, chunkDelayMs: 0 });

/** Schema for behaviours arriving over HTTP (`POST /__mock/behavior`). Unknown keys are rejected. */
export const behaviorPatchSchema = z.strictObject({
  latencyMs: z.number().min(0).optional(),
  chunkDelayMs: z.number().min(0).optional(),
  fail: z
    .strictObject({
      status: z.number().int().min(100).max(599),
      retryAfter: z.string().optional(),
      message: z.string().optional(),
      times: z.number().int().min(0).optional(),
    })
    .optional(),
  hang: z.boolean().optional(),
  reset: z.boolean().optional(),
  midStreamResetAfter: z.number().int().min(0).optional(),
  midStreamError: z.boolean().optional(),
  reply: z.string().optional(),
  omitUsage: z.boolean().optional(),
  refusal: z.string().optional(),
  toolCallsWithoutIndex: z.boolean().optional(),
  emptyToolInput: z.boolean().optional(),
  interleavedToolCalls: z.number().int().min(1).max(16).optional(),
  imageTaskPolls: z.number().int().min(0).optional(),
  imageFail: z.strictObject({ code: z.string(), message: z.string() }).optional(),
  imagesProduced: z.number().int().min(0).optional(),
  imageDownload: z
    .strictObject({
      bytes: z
        .number()
        .int()
        .min(1)
        .max(64 * 1024 * 1024)
        .optional(),
      status: z.number().int().min(200).max(599).optional(),
    })
    .optional(),
});

export class BehaviorStore {
  #default: Partial<Behavior> = {};
  #perSecret = new Map<string, Partial<Behavior>>();
  /** failures already served per secret since its effective `fail` was last set */
  #failuresServed = new Map<string, number>();

  set(secret: string, behavior: Partial<Behavior>): void {
    this.#perSecret.set(secret, { ...behavior });
    this.#failuresServed.delete(secret);
  }

  setDefault(behavior: Partial<Behavior>): void {
    this.#default = { ...behavior };
    for (const secret of [...this.#failuresServed.keys()]) {
      if (!this.#perSecret.has(secret)) this.#failuresServed.delete(secret);
    }
  }

  reset(): void {
    this.#default = {};
    this.#perSecret.clear();
    this.#failuresServed.clear();
  }

  resolve(secret: string): Behavior {
    return { ...BUILTIN_BEHAVIOR, ...this.#default, ...this.#perSecret.get(secret) };
  }

  /** The failure to answer for this request, if any; consumes one of `fail.times`. */
  takeFailure(secret: string, behavior: Behavior): FailSpec | undefined {
    const fail = behavior.fail;
    if (!fail) return undefined;
    const served = this.#failuresServed.get(secret) ?? 0;
    if (fail.times !== undefined && served >= fail.times) return undefined;
    this.#failuresServed.set(secret, served + 1);
    return fail;
  }

  snapshot(): { default: Partial<Behavior>; secrets: Record<string, Partial<Behavior>> } {
    return { default: { ...this.#default }, secrets: Object.fromEntries(this.#perSecret) };
  }
}
