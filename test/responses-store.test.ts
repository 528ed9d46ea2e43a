import test from 'ava';
import { sql } from 'kysely';
import { createDb, type Db } from '../src/db/index.js';
import { loadConversation, loadResponse, RESPONSE_TTL_MS, storeResponse, sweepExpiredResponses } from '../src/wire/responses/store.js';
import { freshEnvironment } from './helpers/env.js';

// Stored responses (SPEC §1b) against a real MariaDB: once per id, the account's own only, 30 days, swept
// in bounded batches.
let db: Db;

test.before(async () => {
  const { env } = await freshEnvironment('responses_store');
  db = createDb(env.DATABASE_URL, 2);
});

test.after.always(async () => {
  await db?.destroy();
});

const stored = (id: string, userId = 1, text = 'hi') => ({
  id,
  userId,
  keyId: 10,
  model: 'm',
  conversation: [{ role: 'user', content: text }],
  response: { id, object: 'response', output_text: text },
});

test.serial('stored once: a second store of the same id (a re-run job) changes nothing', async (t) => {
  await storeResponse(db, stored('resp_once', 1, 'first'));
  await storeResponse(db, stored('resp_once', 1, 'second'));
  const rows = await db.selectFrom('responses').selectAll().where('id', '=', 'resp_once').execute();
  t.is(rows.length, 1);
  t.deepEqual(await loadConversation(db, 'resp_once', 1), [{ role: 'user', content: 'first' }]);
  t.like(await loadResponse(db, 'resp_once', 1), { output_text: 'first' });
  const expires = new Date(rows[0].expires_at).getTime() - new Date(rows[0].created_at).getTime();
  t.true(Math.abs(expires - RESPONSE_TTL_MS) < 60_000, 'kept 30 days');
});

test.serial("only the owner's account reads it; an expired one is gone", async (t) => {
  await storeResponse(db, stored('resp_owner', 1));
  t.is(await loadResponse(db, 'resp_owner', 2), undefined);
  t.is(await loadConversation(db, 'resp_owner', 2), undefined);
  t.is(await loadResponse(db, 'resp_unknown', 1), undefined);
  await storeResponse(db, stored('resp_old', 1), Date.now() - RESPONSE_TTL_MS - 1000);
  t.is(await loadResponse(db, 'resp_old', 1), undefined, 'past 30 days it is not served even before the sweep');
});

test.serial('the sweeper deletes expired rows in bounded batches and keeps live ones', async (t) => {
  const old = Date.now() - RESPONSE_TTL_MS - 60_000;
  await db.deleteFrom('responses').execute();
  for (let i = 0; i < 1_200; i += 100) {
    await Promise.all(Array.from({ length: 100 }, (_, j) => storeResponse(db, stored(`resp_exp_${i + j}`), old)));
  }
  await storeResponse(db, stored('resp_live'));
  t.is(await sweepExpiredResponses(db, 2), 1_000, 'two batches of 500 at most');
  t.is(await sweepExpiredResponses(db), 200);
  t.is(await sweepExpiredResponses(db), 0);
  const left = await db.selectFrom('responses').select(sql<number>`COUNT(*)`.as('n')).executeTakeFirstOrThrow();
  t.is(Number(left.n), 1);
  t.truthy(await loadResponse(db, 'resp_live', 1));
});
