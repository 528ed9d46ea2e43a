import { type Kysely, sql } from 'kysely';

// Money columns are BIGINT nano-USD (prices: micro-USD per 1M tokens); never floats.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('users')
    .addColumn('id', 'bigint', (c) => c.primaryKey().autoIncrement())
    .addColumn('email', 'varchar(254)', (c) => c.notNull().unique())
    .addColumn('password_hash', 'varchar(255)')
    .addColumn('is_admin', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('balance_nano', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('held_nano', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', sql`datetime(3)`, (c) => c.notNull().defaultTo(sql`current_timestamp(3)`))
    .execute();

  await db.schema
    .createTable('api_keys')
    .addColumn('id', 'bigint', (c) => c.primaryKey().autoIncrement())
    .addColumn('user_id', 'bigint', (c) => c.notNull().references('users.id'))
    .addColumn('name', 'varchar(100)', (c) => c.notNull().defaultTo(''))
    .addColumn('prefix', 'varchar(32)', (c) => c.notNull())
    .addColumn('key_hash', 'char(64)', (c) => c.notNull().unique())
    .addColumn('rpm_limit', 'integer', (c) => c.notNull().defaultTo(60))
    .addColumn('cap_nano', 'bigint')
    .addColumn('spent_nano', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('held_nano', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('status', 'varchar(16)', (c) => c.notNull().defaultTo('active'))
    .addColumn('expires_at', sql`datetime(3)`)
    .addColumn('last_used_at', sql`datetime(3)`)
    .addColumn('created_at', sql`datetime(3)`, (c) => c.notNull().defaultTo(sql`current_timestamp(3)`))
    .execute();
  await db.schema.createIndex('api_keys_user').on('api_keys').column('user_id').execute();

  await db.schema
    .createTable('channels')
    .addColumn('id', 'bigint', (c) => c.primaryKey().autoIncrement())
    .addColumn('name', 'varchar(100)', (c) => c.notNull())
    .addColumn('type', 'varchar(16)', (c) => c.notNull())
    .addColumn('base_url', 'varchar(500)', (c) => c.notNull())
    .addColumn('created_at', sql`datetime(3)`, (c) => c.notNull().defaultTo(sql`current_timestamp(3)`))
    .execute();

  await db.schema
    .createTable('upstream_tokens')
    .addColumn('id', 'bigint', (c) => c.primaryKey().autoIncrement())
    .addColumn('channel_id', 'bigint', (c) => c.notNull().references('channels.id'))
    .addColumn('name', 'varchar(100)', (c) => c.notNull().defaultTo(''))
    .addColumn('secret_enc', 'text', (c) => c.notNull())
    .addColumn('secret_hint', 'varchar(16)', (c) => c.notNull().defaultTo(''))
    .addColumn('max_concurrency', 'integer', (c) => c.notNull().defaultTo(4))
    .addColumn('status', 'varchar(16)', (c) => c.notNull().defaultTo('active'))
    .addColumn('disabled_reason', 'varchar(255)')
    .addColumn('created_at', sql`datetime(3)`, (c) => c.notNull().defaultTo(sql`current_timestamp(3)`))
    .execute();

  await db.schema
    .createTable('models')
    .addColumn('id', 'varchar(191)', (c) => c.primaryKey())
    .addColumn('display_name', 'varchar(200)', (c) => c.notNull())
    .addColumn('owned_by', 'varchar(100)', (c) => c.notNull())
    .addColumn('modality', 'varchar(16)', (c) => c.notNull())
    .addColumn('status', 'varchar(16)', (c) => c.notNull())
    .addColumn('channel_id', 'bigint', (c) => c.notNull().references('channels.id'))
    .addColumn('upstream_model', 'varchar(200)', (c) => c.notNull())
    .addColumn('input_micro', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('output_micro', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('image_nano', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('max_output_tokens', 'integer', (c) => c.notNull().defaultTo(4096))
    .addColumn('vision', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('tools', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('sizes', 'text', (c) => c.notNull())
    .addColumn('created_at', sql`datetime(3)`, (c) => c.notNull().defaultTo(sql`current_timestamp(3)`))
    .addColumn('updated_at', sql`datetime(3)`, (c) => c.notNull().defaultTo(sql`current_timestamp(3)`))
    .execute();

  await db.schema
    .createTable('ledger')
    .addColumn('id', 'bigint', (c) => c.primaryKey().autoIncrement())
    .addColumn('request_id', 'varchar(64)', (c) => c.unique())
    .addColumn('user_id', 'bigint', (c) => c.notNull())
    .addColumn('key_id', 'bigint')
    .addColumn('kind', 'varchar(16)', (c) => c.notNull())
    .addColumn('model', 'varchar(191)')
    .addColumn('prompt_tokens', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('completion_tokens', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('images', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('amount_nano', 'bigint', (c) => c.notNull())
    .addColumn('estimated', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('note', 'varchar(255)')
    .addColumn('created_at', sql`datetime(3)`, (c) => c.notNull().defaultTo(sql`current_timestamp(3)`))
    .execute();
  await db.schema.createIndex('ledger_user_time').on('ledger').columns(['user_id', 'id']).execute();
  await db.schema.createIndex('ledger_key_time').on('ledger').columns(['key_id', 'id']).execute();

  await db.schema
    .createTable('holds')
    .addColumn('request_id', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('user_id', 'bigint', (c) => c.notNull())
    .addColumn('key_id', 'bigint', (c) => c.notNull())
    .addColumn('channel_id', 'bigint', (c) => c.notNull())
    .addColumn('amount_nano', 'bigint', (c) => c.notNull())
    .addColumn('created_at', sql`datetime(3)`, (c) => c.notNull().defaultTo(sql`current_timestamp(3)`))
    .execute();
  await db.schema.createIndex('holds_created').on('holds').column('created_at').execute();

  await db.schema
    .createTable('redemption_codes')
    .addColumn('id', 'bigint', (c) => c.primaryKey().autoIncrement())
    .addColumn('code_hash', 'char(64)', (c) => c.notNull().unique())
    .addColumn('amount_nano', 'bigint', (c) => c.notNull())
    .addColumn('redeemed_by', 'bigint')
    .addColumn('redeemed_at', sql`datetime(3)`)
    .addColumn('created_at', sql`datetime(3)`, (c) => c.notNull().defaultTo(sql`current_timestamp(3)`))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of ['redemption_codes', 'holds', 'ledger', 'models', 'upstream_tokens', 'channels', 'api_keys', 'users']) {
    await db.schema.dropTable(table).ifExists().execute();
  }
}
