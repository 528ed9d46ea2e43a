import type { MockUpstream } from '../../src/mock/upstream.js';
import type { AdminClient } from './admin.js';
import { startBed } from './bed.js';
import { newCustomer } from './customer.js';
import type { Gateway } from './gateway.js';
import { nano } from './money.js';

/**
 * A gateway (real web + worker processes) on the mock upstream with the demo's catalog: the chat models
 * real clients are tested on, one per channel type that matters (an OpenAI-type and an Anthropic one), an
 * embedding model and an image model; and a funded customer. Clients get only `baseURL` and `apiKey`.
 */
export interface ClientBed {
  mock: MockUpstream;
  gateway: Gateway;
  admin: AdminClient;
  /** `http://127.0.0.1:<port>/v1` */
  baseURL: string;
  apiKey: string;
  userId: number;
  /** USD spent so far by the customer, as nano-USD */
  spent(): Promise<bigint>;
  stop(): Promise<void>;
}

/** The chat models, by channel type; the ids clients use, as in the demo catalog. */
export const CHAT_MODELS = { openai: 'gpt-4o-mini', anthropic: 'claude-sonnet-4-6' } as const;
export const EMBEDDING_MODEL = 'text-embedding-3-small';
export const IMAGE_MODEL = 'wanx-v1';
const CREDIT = '50';

export async function startClientBed(name: string): Promise<ClientBed> {
  const bed = await startBed(name, { env: { IMAGE_POLL_MS: '20' } });
  const { mock, gateway, url, admin } = bed;

  const openai = await admin.channel('openai', 'openai', `${mock.url}/v1`);
  await admin.token(openai.id, 'sk-openai-clients', 16);
  const anthropic = await admin.channel('anthropic', 'anthropic', mock.url);
  await admin.token(anthropic.id, 'sk-ant-clients', 16);
  const dashscope = await admin.channel('dashscope', 'dashscope', mock.url);
  await admin.token(dashscope.id, 'sk-dashscope-clients', 16);
  await admin.model(CHAT_MODELS.openai, {
    channel_id: openai.id,
    upstream_model: 'gpt-4o-mini',
    input_price_per_1m: 0.15,
    output_price_per_1m: 0.6,
    max_output_tokens: 4096,
  });
  await admin.model(CHAT_MODELS.anthropic, {
    channel_id: anthropic.id,
    upstream_model: 'claude-sonnet-4-6',
    input_price_per_1m: 3,
    output_price_per_1m: 15,
    cache_read_price_per_1m: 0.3,
    cache_write_price_per_1m: 3.75,
    max_output_tokens: 4096,
  });
  await admin.model(EMBEDDING_MODEL, {
    modality: 'embedding',
    channel_id: openai.id,
    upstream_model: 'text-embedding-3-small',
    input_price_per_1m: 0.02,
  });
  await admin.model(IMAGE_MODEL, {
    modality: 'image',
    vision: false,
    tools: false,
    channel_id: dashscope.id,
    upstream_model: 'wanx-v1',
    price_per_image: 0.02,
  });
  const { userId, apiKey } = await newCustomer(admin, `${name}@example.com`, CREDIT, { rpm_limit: 10_000 });
  return {
    mock,
    gateway,
    admin,
    baseURL: `${url}/v1`,
    apiKey,
    userId,
    spent: async () => nano(CREDIT) - nano((await admin.getUser(userId)).balance_usd),
    stop: bed.stop,
  };
}
