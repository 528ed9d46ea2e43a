import { type Kysely, sql } from 'kysely';

/**
 * usage_daily: spend per account, UTC day and model, kept by the settlement transaction (one upsert per
 * charge, src/billing/settlement.ts), so the console's /usage reads a few hundred rows however long the
 * ledger grows. Existing charges are summed in once here.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('usage_daily')
    .addColumn('user_id', 'bigint', (c) => c.notNull())
    .addColumn('day', 'date', (c) => c.notNull())
    .addColumn('model', 'varchar(191)', (c) => c.notNull())
    .addColumn('requests', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('prompt_tokens', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('completion_tokens', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('images', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('spent_nano', 'bigint', (c) => c.notNull().defaultTo(0))
    .addPrimaryKeyConstraint('usage_daily_pk', ['user_id', 'day', 'model'])
    .execute();
  await sql`
    INSERT INTO usage_daily (user_id, day, model, requests, prompt_tokens, completion_tokens, images, spent_nano)
    SELECT user_id, DATE(created_at), COALESCE(model, ''), COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(images), -SUM(amount_nano)
    FROM ledger WHERE kind = 'charge'
    GROUP BY user_id, DATE(created_at), COALESCE(model, '')`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('usage_daily').ifExists().execute();
}
