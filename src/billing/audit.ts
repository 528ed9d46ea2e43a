import { sql } from 'kysely';
import type { Db } from '../db/index.js';
import { formatUsd } from './money.js';

export interface AuditFinding {
  account: string;
  check: string;
  expected: string;
  actual: string;
}

type Row = Record<string, string | number | null>;

/**
 * Verifies SPEC §3's invariants for every account and key: balance = sum of the ledger, held = sum of the
 * open holds, spent = sum of the key's charges, and no balance overdrawn. Read-only. A key's spent may exceed
 * its cap without a fault: an operator or the customer may lower the cap below what was spent, to stop the key
 * (and a request admitted under the old cap settles under it); that the charges admitted under a cap never
 * exceed it is the holds' conditional UPDATE's to keep (test/billing.test.ts).
 */
export async function auditLedger(db: Db): Promise<{ accounts: number; keys: number; findings: AuditFinding[] }> {
  const users = (
    await sql<Row>`
    SELECT u.id, u.balance_nano, u.held_nano,
      (SELECT COALESCE(SUM(l.amount_nano), 0) FROM ledger l WHERE l.user_id = u.id) AS ledger_sum,
      (SELECT COALESCE(SUM(h.amount_nano), 0) FROM holds h WHERE h.user_id = u.id) AS holds_sum
    FROM users u`.execute(db)
  ).rows;
  const keys = (
    await sql<Row>`
    SELECT k.id, k.spent_nano, k.held_nano,
      (SELECT COALESCE(-SUM(l.amount_nano), 0) FROM ledger l WHERE l.key_id = k.id AND l.kind = 'charge') AS charged,
      (SELECT COALESCE(SUM(h.amount_nano), 0) FROM holds h WHERE h.key_id = k.id) AS holds_sum
    FROM api_keys k`.execute(db)
  ).rows;

  const findings: AuditFinding[] = [];
  const expect = (account: string, check: string, expected: unknown, actual: unknown) => {
    if (BigInt(String(expected)) !== BigInt(String(actual))) {
      findings.push({ account, check, expected: formatUsd(BigInt(String(expected))), actual: formatUsd(BigInt(String(actual))) });
    }
  };
  for (const u of users) {
    const account = `user ${u.id}`;
    expect(account, 'balance = sum of ledger', u.ledger_sum, u.balance_nano);
    expect(account, 'held = sum of open holds', u.holds_sum, u.held_nano);
    if (BigInt(String(u.balance_nano)) < 0n)
      findings.push({ account, check: 'balance ≥ 0', expected: '≥ 0', actual: formatUsd(BigInt(String(u.balance_nano))) });
  }
  for (const k of keys) {
    const account = `key ${k.id}`;
    expect(account, 'spent = sum of charges', k.charged, k.spent_nano);
    expect(account, 'held = sum of open holds', k.holds_sum, k.held_nano);
  }
  return { accounts: users.length, keys: keys.length, findings };
}
