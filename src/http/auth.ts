import type { Middleware } from 'koa';
import { hashApiKey, KEY_PREFIX } from '../accounts/keys.js';
import type { KeyStore } from '../accounts/key-store.js';
import { ApiError } from './errors.js';

/** `/v1` auth (SPEC §1): Bearer sk-eastx-… → ctx.state.apiKey, plus the catalog version read in the same round trip. */
export const apiKeyAuth = (keys: KeyStore): Middleware => async (ctx, next) => {
  const header = ctx.get('authorization');
  const match = /^Bearer(?:\s+(.*))?$/i.exec(header.trim());
  const token = match?.[1]?.trim();
  if (!header || !match || !token) throw new ApiError('missing_key', 'missing API key: send Authorization: Bearer sk-eastx-…');
  if (!token.startsWith(KEY_PREFIX)) throw new ApiError('invalid_key', 'invalid API key');
  const { key, catalogVersion } = await keys.lookup(hashApiKey(token));
  if (!key || key.status === 'revoked') throw new ApiError('invalid_key', 'invalid API key');
  if (key.status === 'disabled') throw new ApiError('disabled', 'this API key has been disabled');
  if (key.expiresAt !== null && key.expiresAt <= Date.now()) throw new ApiError('expired', 'this API key has expired');
  ctx.state.apiKey = key;
  ctx.state.catalogVersion = catalogVersion;
  await next();
};
