import test from 'ava';
import { sql } from 'kysely';
import { createConnection } from 'mysql2/promise';
import { auditLedger } from '../src/billing/audit.js';
import { placeHold } from '../src/billing/holds.js';
import { settle } from '../src/billing/settlement.js';
import { billingState, voidRequest } from '../src/billing/unbillable.js';
import { createDb, type Db } from '../src/db/index.js';
import { fundedKey } from './helpers/db-customer.js';
import { freshEnvironment } from './helpers/env.js';
import { TcpProxy } from './helpers/tcp-proxy.js';
import { untilTrueOrThrow } from './helpers/wait.js';

// SPEC §3 when the connection to MariaDB dies while it runs a hold or a settlement. MariaDB goes on running
// a multi-statement transaction whose client is gone, up to its COMMIT; the first result it then fails to
// send raises a network error, which sets ROW_COUNT() to -1 for the statement after it. Whatever the moment
// of the cut, the money must move whole or not at all: the ledger audit stays exact, and making the request
// unbillable afterwards (what the sweepers do for a call that failed this way) gives everything back.
let db: Db;
let proxy: TcpProxy;
let directUrl: string;
let proxiedUrl: string;
const BALANCE = 1_000_000_000n;
const HOLD = 500_000n;

test.before(async () => {
  const { env } = await freshEnvironment('atomicity');
  directUrl = env.DATABASE_URL;
  db = createDb(directUrl, 2);
  const url = new URL(env.DATABASE_URL);
  proxy = await TcpProxy.start({ host: url.hostname, port: Number(url.port || 3306) });
  url.port = String(proxy.port);
  proxiedUrl = url.toString();
});

test.after.always(async () => {
  await proxy?.close();
  await db?.destroy();
});

/** Sessions of this database other than the caller's that MariaDB runs a statement for (since `forMs` at least). */
async function busySessions(forMs = 0): Promise<number> {
  const { rows } = await sql<{ n: number | string }>`
    SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST
    WHERE DB = DATABASE() AND ID <> CONNECTION_ID() AND COMMAND = 'Query' AND TIME_MS >= ${forMs}`.execute(db);
  return Number(rows[0].n);
}

const waitFor = (probe: () => Promise<boolean>, what: string) => untilTrueOrThrow(probe, what, 5_000, 20);

/**
 * Runs `work` on a pool reaching MariaDB through the proxy and cuts the connection while MariaDB is inside
 * the script: the account's row is locked meanwhile, so MariaDB waits in the middle of it; the proxy then
 * resets the connection, and the lock goes. Returns once MariaDB has finished the orphaned script.
 */
async function cutMidway(userId: number, work: (through: Db) => Promise<unknown>): Promise<{ error?: string }> {
  await proxy.reopen();
  const through = createDb(proxiedUrl, 1);
  const locker = await createConnection(directUrl);
  try {
    await locker.query('START TRANSACTION');
    await locker.query('SELECT id FROM users WHERE id = ? FOR UPDATE', [userId]);
    const outcome = work(through).then(
      () => ({}),
      (err: Error) => ({ error: err.message }),
    );
    // the account's row is locked: a statement running this long is waiting for it
    await waitFor(async () => (await busySessions(200)) > 0, 'the script to wait for the row lock');
    await proxy.cut();
    await locker.query('COMMIT');
    await waitFor(async () => (await busySessions()) === 0, 'MariaDB to finish the orphaned script');
    return await outcome;
  } finally {
    await locker.end();
    await through.destroy().catch(() => undefined);
  }
}

/** A customer with a balance and a key, and what the ledger audit says about them. */
async function customer(email: string) {
  const { userId, keyId } = await fundedKey(db, email, BALANCE);
  return {
    userId,
    keyId,
    async state() {
      const row = await db.selectFrom('users').select(['balance_nano', 'held_nano']).where('id', '=', userId).executeTakeFirstOrThrow();
      return { balance: BigInt(row.balance_nano), held: BigInt(row.held_nano) };
    },
    async auditFindings() {
      const mine = new Set([`user ${userId}`, `key ${keyId}`]);
      return (await auditLedger(db)).findings.filter((f) => mine.has(f.account));
    },
  };
}

test.serial('a settlement cut off inside MariaDB charges whole or not at all', async (t) => {
  const who = await customer('settle-cut@example.com');
  const { userId, keyId } = who;
  const requestId = 'req_settle_cut';
  t.true(await placeHold(db, { requestId, userId, keyId, channelId: 1, amountNano: HOLD }));
  const outcome = await cutMidway(userId, (through) =>
    settle(through, {
      requestId,
      userId,
      keyId,
      model: 'm',
      prices: { inputMicro: 2_000_000n, outputMicro: 8_000_000n, imageNano: 0n },
      usage: { promptTokens: 1, completionTokens: 6, images: 0 },
      holdNano: HOLD,
      estimated: false,
    }),
  );
  t.truthy(outcome.error, 'the worker cannot tell whether the settlement committed');

  const state = await billingState(db, requestId);
  const { balance, held } = await who.state();
  t.deepEqual(await who.auditFindings(), [], 'balance = ledger, spent = charges, held = holds');
  if (state.held) t.deepEqual({ balance, held }, { balance: BALANCE, held: HOLD }, 'not settled: nothing moved');
  else
    t.deepEqual({ balance, held, charged: state.chargedNano }, { balance: BALANCE - 50_000n, held: 0n, charged: 50_000n }, 'settled whole');

  t.not(await voidRequest(db, requestId), 'none', 'the sweeper finds the hold or the charge');
  t.deepEqual(await who.state(), { balance: BALANCE, held: 0n }, 'everything given back');
  t.deepEqual(await who.auditFindings(), []);
});

test.serial('a hold cut off inside MariaDB is placed whole or not at all', async (t) => {
  const who = await customer('hold-cut@example.com');
  const { userId, keyId } = who;
  const requestId = 'req_hold_cut';
  const outcome = await cutMidway(userId, (through) => placeHold(through, { requestId, userId, keyId, channelId: 1, amountNano: HOLD }));
  t.truthy(outcome.error, 'the web cannot tell whether the hold was placed');

  const state = await billingState(db, requestId);
  t.deepEqual(await who.auditFindings(), [], 'held = open holds');
  t.deepEqual(await who.state(), { balance: BALANCE, held: state.held ? HOLD : 0n });

  await voidRequest(db, requestId); // the sweeper's release of an orphaned hold
  t.deepEqual(await who.state(), { balance: BALANCE, held: 0n }, 'nothing left held');
  t.deepEqual(await who.auditFindings(), []);
});
