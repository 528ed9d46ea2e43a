import { createHash, randomBytes } from 'node:crypto';

export const KEY_PREFIX = 'sk-eastx-';

/** A new API key: `sk-eastx-` + 256 random bits (base64url). Only its hash is stored. */
export function generateApiKey(): string {
  return KEY_PREFIX + randomBytes(32).toString('base64url');
}

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/** What the console and admin API show instead of the key: the prefix and the first 4 secret characters. */
export function displayPrefix(key: string): string {
  return key.slice(0, KEY_PREFIX.length + 4);
}
