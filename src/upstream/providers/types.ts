import type { AnthropicHeaders } from '../../queue/jobs.js';

export type Json = Record<string, unknown>;

/** What an adapter needs for one upstream call. The secret lives only here, in worker memory. */
export interface UpstreamCall {
  baseUrl: string;
  secret: string;
  upstreamModel: string;
  signal: AbortSignal;
}

/** Token usage as OpenAI reports it. */
export interface TokenUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  [extra: string]: unknown;
}

export type ChatCompletion = Record<string, unknown> & { usage?: TokenUsage };
export type ChatChunk = Record<string, unknown> & {
  choices?: Array<Record<string, unknown>>;
  usage?: TokenUsage | null;
  /**
   * The gateway's own, never relayed: the prompt's usage as the upstream reported it before the end (Anthropic's
   * message_start), on the first chunk. A stream cut short bills its prompt from it (SPEC §3: cache prices too).
   */
  promptUsage?: TokenUsage;
};

export interface EmbeddingsResult {
  /** OpenAI's embeddings response with float arrays. */
  response: {
    object: 'list';
    data: Array<{ object: 'embedding'; index: number; embedding: number[] | string }>;
    model: string;
    usage?: { prompt_tokens: number; total_tokens: number };
  };
}

export interface ImageRequest {
  prompt: string;
  n: number;
  size: string;
  extra: Record<string, unknown>;
  /** First wait between task polls (async providers); later waits grow from it. */
  pollMs: number;
  /** Called once the provider accepted the task: from then on a failure must not resubmit it on another token. */
  onSubmitted?: () => void;
}

export interface ImagesResult {
  data: Array<{ url: string; revised_prompt?: string }>;
  imagesProduced: number;
}

/**
 * One adapter per provider type (SPEC §4), all behind this surface; nothing else branches on the type.
 * Every failure leaves as an UpstreamError. Chat requests and responses are OpenAI-shaped on both sides.
 */
export interface ProviderAdapter {
  chat(body: Record<string, unknown>, call: UpstreamCall): Promise<ChatCompletion>;
  /** OpenAI chunks; the last one (choices: []) carries usage when the upstream reported it. */
  chatStream(body: Record<string, unknown>, call: UpstreamCall): AsyncIterable<ChatChunk>;
  embeddings?(body: Record<string, unknown>, call: UpstreamCall): Promise<EmbeddingsResult>;
  /** Anthropic's Messages API as is (SPEC §1b): the body goes up and the answer comes back untranslated. */
  messages?(body: Json, call: UpstreamCall, headers: AnthropicHeaders): Promise<Json>;
  /** The same, streamed: the upstream's events as they come (`event` = the SSE event name). */
  messagesStream?(body: Json, call: UpstreamCall, headers: AnthropicHeaders): AsyncIterable<{ event: string; data: Json }>;
  /** `POST /v1/messages/count_tokens` upstream: the prompt's input tokens. */
  countMessageTokens?(body: Json, call: UpstreamCall, headers: AnthropicHeaders): Promise<number>;
  images?(request: ImageRequest, call: UpstreamCall): Promise<ImagesResult>;
}

/** What a provider type can serve, declared by its index.ts; the web checks it before holding any money. */
export interface Capabilities {
  chat: boolean;
  stream: boolean;
  tools: boolean;
  vision: boolean;
  embeddings: boolean;
  /** embeddings `input` given as token arrays */
  embeddingTokenInput: boolean;
  images: boolean;
  /** chat `response_format.type`s it honours; `forwarded`: any, passed to the upstream untouched for it to judge */
  responseFormats: ReadonlyArray<ResponseFormat> | 'forwarded';
  /** Anthropic's Messages API natively (the adapter's `messages*` methods); otherwise it is translated to chat */
  messages: boolean;
  /** How a translated request asks for reasoning (Anthropic's `thinking`), if the upstream has a setting */
  reasoning: ReasoningParam;
}

/** OpenAI's `reasoning_effort`, DashScope's `enable_thinking` (+ `thinking_budget`), Anthropic's own `thinking`. */
export type ReasoningParam = 'reasoning_effort' | 'enable_thinking' | 'thinking';

export type ResponseFormat = 'text' | 'json_object' | 'json_schema';

/** One provider type: what it supports, a check of chat requests it cannot honour, and its adapter. */
export interface Provider {
  capabilities: Capabilities;
  /** The first field of an OpenAI chat request this provider cannot honour, as [field, message]. */
  chatRequestProblem?(body: Json): [string, string] | undefined;
  adapter: ProviderAdapter;
}
