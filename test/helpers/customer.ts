import OpenAI from 'openai';
import type { AdminClient } from './admin.js';

/** A funded user with one key, and the official SDK pointed at the gateway with that key. */
export async function newCustomer(
  admin: AdminClient,
  email: string,
  creditUsd: string,
  keyFields: Record<string, unknown> = { rpm_limit: 1000 },
) {
  const user = await admin.user(email, creditUsd);
  const key = await admin.key(user.id, keyFields);
  const client = new OpenAI({ baseURL: `${admin.baseUrl}/v1`, apiKey: key.key, maxRetries: 0 });
  return { userId: user.id, keyId: key.id, apiKey: key.key, client };
}

/**
 * POSTs `body` (as JSON, or a string as it is) to `url` with `key` as the bearer key, as a customer's own HTTP
 * client would: the answer, and its JSON body (undefined when it is not JSON).
 */
export async function postJson<T = Record<string, any>>(url: string, key: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { res, json: (await res.json().catch(() => undefined)) as T };
}
