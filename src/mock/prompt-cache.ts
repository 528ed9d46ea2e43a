/**
 * The mock's prompt cache, shaped like the real ones so billing can be tested against them:
 *   - Anthropic caches the prompt prefix that ends at the last `cache_control` breakpoint: the first request
 *     writes it (`cache_creation_input_tokens`), later ones read it (`cache_read_input_tokens`);
 *   - OpenAI caches automatically: a prompt whose prefix (every message but the last) was seen before is
 *     served from the cache for that prefix, in 128-token steps (`prompt_tokens_details.cached_tokens`).
 * Both cache only prefixes of at least MIN_TOKENS tokens, per credential and model, for five minutes.
 */
import { createHash } from 'node:crypto';

const MIN_TOKENS = 1024;
const OPENAI_STEP = 128;
const TTL_MS = 5 * 60_000;
/** Entries kept at most (the oldest go first): a long-running demo mock stays small. */
const MAX_ENTRIES = 10_000;

export interface CacheUse {
  /** prompt tokens served from the cache */
  read: number;
  /** prompt tokens written to the cache */
  written: number;
}

export const NO_CACHE: CacheUse = { read: 0, written: 0 };

export class PromptCache {
  readonly #expiry = new Map<string, number>();

  #key(scope: string, prefix: string): string {
    return createHash('sha256').update(scope).update('\0').update(prefix).digest('hex');
  }

  /** Whether the prefix was cached (and still is); records it either way. */
  #seen(key: string, now = Date.now()): boolean {
    const expiry = this.#expiry.get(key);
    const hit = expiry !== undefined && expiry > now;
    this.#expiry.delete(key);
    this.#expiry.set(key, now + TTL_MS);
    if (this.#expiry.size > MAX_ENTRIES) this.#expiry.delete(this.#expiry.keys().next().value as string);
    return hit;
  }

  /** Anthropic: the breakpoint's prefix (`prefixTokens` of it counted) is read when cached, else written. */
  anthropic(scope: string, prefix: string, prefixTokens: number): CacheUse {
    if (prefixTokens < MIN_TOKENS) return NO_CACHE;
    return this.#seen(this.#key(scope, prefix)) ? { read: prefixTokens, written: 0 } : { read: 0, written: prefixTokens };
  }

  /** OpenAI: a seen prefix is read, rounded down to 128-token steps; nothing is reported as written. */
  openai(scope: string, prefix: string, prefixTokens: number): CacheUse {
    if (prefixTokens < MIN_TOKENS) return NO_CACHE;
    const hit = this.#seen(this.#key(scope, prefix));
    return hit ? { read: Math.floor(prefixTokens / OPENAI_STEP) * OPENAI_STEP, written: 0 } : NO_CACHE;
  }

  clear(): void {
    this.#expiry.clear();
  }
}
