import { type Kysely, sql } from 'kysely';

/**
 * Stored responses (SPEC §1b): a `/v1/responses` answer made with `store` (the default) is kept for 30 days
 * so that `previous_response_id` continues its conversation and `GET /v1/responses/{id}` returns it, for
 * keys of the same account only. `conversation` holds the chat messages the next turn sends upstream (this
 * turn's input and output included, its instructions not); `response` the response object as answered.
 * The sweeper deletes expired rows in bounded batches by `expires_at`.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('responses')
    .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('user_id', 'bigint', (c) => c.notNull())
    .addColumn('key_id', 'bigint', (c) => c.notNull())
    .addColumn('model', 'varchar(191)', (c) => c.notNull())
    .addColumn('conversation', sql`longtext`, (c) => c.notNull())
    .addColumn('response', sql`longtext`, (c) => c.notNull())
    .addColumn('created_at', sql`datetime(3)`, (c) => c.notNull().defaultTo(sql`CURRENT_TIMESTAMP(3)`))
    .addColumn('expires_at', sql`datetime(3)`, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('responses_expires').on('responses').column('expires_at').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('responses').execute();
}
