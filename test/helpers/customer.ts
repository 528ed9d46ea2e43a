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
