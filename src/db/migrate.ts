import { type Migration, Migrator } from 'kysely';
import * as init from '../../migrations/001_init.js';
import * as usageDaily from '../../migrations/002_usage_daily.js';
import * as cachePrices from '../../migrations/003_cache_prices.js';
import * as modelRoutes from '../../migrations/004_model_routes.js';
import * as responses from '../../migrations/005_responses.js';
import { createDb, ensureDatabase } from './index.js';

/** Every migration, in order. Listed statically so the compiled app needs no directory scan. */
const migrations: Record<string, Migration> = {
  '001_init': init,
  '002_usage_daily': usageDaily,
  '003_cache_prices': cachePrices,
  '004_model_routes': modelRoutes,
  '005_responses': responses,
};

export async function migrateToLatest(databaseUrl: string): Promise<string[]> {
  await ensureDatabase(databaseUrl);
  const db = createDb(databaseUrl, 2);
  try {
    const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
    const { error, results } = await migrator.migrateToLatest();
    if (error) throw error;
    return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
  } finally {
    await db.destroy();
  }
}
