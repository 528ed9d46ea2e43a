import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import test from 'ava';
import { sql } from 'kysely';
import { createDb, poolOf } from '../src/db/index.js';
import { MYSQL_SERVER } from './helpers/env.js';

setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

/** The JS heap in use after a full collection: what is live. */
function liveHeapBytes(): number {
  collectGarbage();
  collectGarbage();
  return process.memoryUsage().heapUsed;
}

// mysql2 gives every connection a prepared-statement cache that preallocates its full size (16,000 entries,
// 512 KB of JS heap, by default); eastx never prepares a statement, and the web and worker pools keep 20
// connections each.
test('a pooled MariaDB connection costs little JS heap: no prepared-statement cache is preallocated', async (t) => {
  const connections = 20;
  const db = createDb(`${MYSQL_SERVER}/information_schema`, connections);
  try {
    await sql`SELECT 1`.execute(db); // the pool and mysql2's shared parser caches exist before the first reading
    const before = liveHeapBytes();
    // each of these holds its connection for a moment, so the pool opens all of them
    await Promise.all(Array.from({ length: connections }, () => sql`SELECT SLEEP(0.2)`.execute(db)));
    t.is((poolOf(db) as unknown as { _allConnections: { length: number } })._allConnections.length, connections);
    const perConnection = (liveHeapBytes() - before) / (connections - 1);
    t.log(`JS heap per pooled connection: ${(perConnection / 1024).toFixed(1)} KB`);
    t.true(perConnection < 100 * 1024, `${Math.round(perConnection / 1024)} KB per connection`);
  } finally {
    await db.destroy();
  }
});
