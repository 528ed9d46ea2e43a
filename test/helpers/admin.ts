import { randomBytes } from 'node:crypto';
import type { Behavior, MockUpstream } from '../../src/mock/upstream.js';

/** A thin client of the admin API (SPEC §5), as an operator's script would use it. */
export class AdminClient {
  constructor(
    readonly baseUrl: string,
    private readonly adminToken: string,
  ) {}

  async call<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = (await res.json()) as T;
    if (!res.ok) throw new Error(`${method} ${path} → ${res.status} ${JSON.stringify(json)}`);
    return json;
  }

  channel(name: string, type: 'openai' | 'anthropic' | 'dashscope', baseUrl: string) {
    return this.call<{ id: number }>('POST', '/admin/api/channels', { name, type, base_url: baseUrl });
  }

  token(channelId: number, secret: string, maxConcurrency = 4, name = secret) {
    return this.call<{ id: number }>('POST', `/admin/api/channels/${channelId}/tokens`, { secret, max_concurrency: maxConcurrency, name });
  }

  model(id: string, fields: Record<string, unknown>) {
    return this.call('PUT', `/admin/api/models/${encodeURIComponent(id)}`, {
      display_name: id,
      owned_by: 'test',
      modality: 'chat',
      status: 'active',
      max_output_tokens: 256,
      vision: true,
      tools: true,
      ...fields,
    });
  }

  async user(email: string, creditUsd?: string) {
    const user = await this.call<{ id: number }>('POST', '/admin/api/users', { email });
    if (creditUsd) await this.call('POST', `/admin/api/users/${user.id}/credit`, { amount_usd: creditUsd });
    return user;
  }

  key(userId: number, fields: Record<string, unknown> = {}) {
    return this.call<{ id: number; key: string }>('POST', `/admin/api/users/${userId}/keys`, { name: 'test', ...fields });
  }

  getUser(id: number) {
    return this.call<{ balance_usd: string; held_usd: string }>('GET', `/admin/api/users/${id}`);
  }

  getKey(id: number) {
    return this.call<{ spent_usd: string; held_usd: string; status: string }>('GET', `/admin/api/keys/${id}`);
  }

  usage(query: string) {
    return this.call<{ data: Array<Record<string, unknown>> }>('GET', `/admin/api/usage?${query}`);
  }
}

/**
 * A channel of its own on the mock upstream (one token behaving as `behavior`) and a model `<name>/model`
 * priced 2 / 8 USD per 1M tokens on it.
 */
export async function mockChannel(admin: AdminClient, mock: MockUpstream, name: string, behavior: Partial<Behavior>) {
  const channel = await admin.channel(name, 'openai', `${mock.url}/v1`);
  const secret = `${name}-${randomBytes(6).toString('hex')}`;
  const tokenId = (await admin.token(channel.id, secret, 4, name)).id;
  mock.setBehavior(secret, behavior);
  const model = `${name}/model`;
  await admin.model(model, { channel_id: channel.id, upstream_model: 'mock-gpt', input_price_per_1m: 2, output_price_per_1m: 8 });
  return { model, secret, tokenId };
}
