import { createHash, timingSafeEqual } from 'node:crypto';

/** HTTP's optional whitespace is space and tab only; `trim()` would also strip U+00A0 and friends. */
const stripOws = (text: string) => text.replace(/^[ \t]+|[ \t]+$/g, '');

/**
 * What an Authorization header presents: `missing` for no header, another scheme or an empty credential
 * (SPEC §2 missing_key), otherwise the credential exactly as sent, with nothing but space and tab stripped.
 */
export type Presented = { kind: 'missing' } | { kind: 'bearer'; token: string } | { kind: 'basic'; password: string };

export function presentedCredential(header: string | undefined): Presented {
  const value = stripOws(header ?? '');
  const match = /^(Bearer|Basic)[ \t]+([\s\S]*)$/i.exec(value);
  if (!match || match[2] === '') return { kind: 'missing' };
  const scheme = match[1].toLowerCase();
  if (scheme === 'bearer') return { kind: 'bearer', token: match[2] };
  const decoded = Buffer.from(match[2], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 || colon === decoded.length - 1 ? { kind: 'missing' } : { kind: 'basic', password: decoded.slice(colon + 1) };
}

/** An `x-api-key` header (Anthropic's clients): the key as sent, space and tab stripped; empty = missing. */
export function presentedApiKey(header: string | undefined): Presented {
  const token = stripOws(header ?? '');
  return token === '' ? { kind: 'missing' } : { kind: 'bearer', token };
}

const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/** Constant-time comparison of a presented secret with the expected one (both hashed to equal length). */
export function sameSecret(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected));
}
