import type { Kysely } from 'kysely';

/**
 * Prompt caching (SPEC §3): a model may price prompt tokens read from and written to the upstream's cache
 * (micro-USD per 1M tokens; NULL = the model's input price, so the default follows it), and every ledger
 * row keeps how many of its prompt tokens were cache reads and cache writes.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('models').addColumn('cache_read_micro', 'bigint').execute();
  await db.schema.alterTable('models').addColumn('cache_write_micro', 'bigint').execute();
  await db.schema
    .alterTable('ledger')
    .addColumn('cached_tokens', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema
    .alterTable('ledger')
    .addColumn('cache_write_tokens', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('ledger').dropColumn('cache_write_tokens').execute();
  await db.schema.alterTable('ledger').dropColumn('cached_tokens').execute();
  await db.schema.alterTable('models').dropColumn('cache_write_micro').execute();
  await db.schema.alterTable('models').dropColumn('cache_read_micro').execute();
}
