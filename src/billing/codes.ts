import { createHash, randomBytes } from 'node:crypto';
import type { Db } from '../db/index.js';
import { badRequest } from '../http/errors.js';
import { redeem } from './ledger.js';

/** Crockford base32: no I, L, O, U, so codes survive being read aloud or retyped. */
const CODE_ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const CODE_PATTERN = /^EASTX([0-9A-Z]{16})$/;

/** `EASTX-XXXX-XXXX-XXXX-XXXX`: 16 base32 characters, 80 random bits. */
function generateCode(): string {
  const bytes = randomBytes(10);
  let bits = 0n;
  for (const byte of bytes) bits = (bits << 8n) | BigInt(byte);
  let chars = '';
  for (let i = 0; i < 16; i++) chars = CODE_ALPHABET[Number((bits >> BigInt(5 * i)) & 31n)] + chars;
  return `EASTX-${chars.match(/.{4}/g)!.join('-')}`;
}

/** The stored form of a code: sha256 of its canonical spelling (case, spaces and dashes don't matter). */
function codeHash(code: string): string | undefined {
  const match = CODE_PATTERN.exec(code.toUpperCase().replace(/[\s-]/g, ''));
  if (!match) return undefined;
  return createHash('sha256')
    .update(`EASTX-${match[1].match(/.{4}/g)!.join('-')}`)
    .digest('hex');
}

/** Creates `count` single-use codes worth `amountNano` each; the codes are shown once (only hashes are stored). */
export async function createRedemptionCodes(db: Db, amountNano: bigint, count: number): Promise<string[]> {
  const codes = Array.from({ length: count }, generateCode);
  await db
    .insertInto('redemption_codes')
    .values(codes.map((code) => ({ code_hash: codeHash(code)!, amount_nano: amountNano })))
    .execute();
  return codes;
}

/** Redeems a code for a user, once, whatever the concurrency (src/billing/ledger.ts). */
export async function redeemCode(db: Db, userId: number, code: string): Promise<{ amountNano: bigint; balanceNano: bigint }> {
  const hash = codeHash(code);
  if (!hash) throw badRequest('code: not a redemption code (expected EASTX-XXXX-XXXX-XXXX-XXXX)');
  return redeem(db, userId, hash);
}
