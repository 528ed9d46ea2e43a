import { type Kysely, sql } from 'kysely';

/**
 * Model routes (SPEC §4): a public model is served by one or more routes, each a channel + upstream model
 * name + priority (higher first) + weight. A model's former `channel_id` + `upstream_model` become its one
 * route, and those two columns go: the routes are the one place a model's upstreams are written.
 * API keys get `allowed_models` (a JSON array of ids and `prefix*` patterns; NULL = every model) and
 * `max_concurrent_requests` (NULL = no limit).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('model_routes')
    .addColumn('id', 'bigint', (c) => c.primaryKey().autoIncrement())
    .addColumn('model_id', 'varchar(191)', (c) => c.notNull())
    .addColumn('channel_id', 'bigint', (c) => c.notNull())
    .addColumn('upstream_model', 'varchar(200)', (c) => c.notNull())
    .addColumn('priority', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('weight', 'integer', (c) => c.notNull().defaultTo(1))
    /** the order the operator listed the routes in (ties of priority and weight keep it) */
    .addColumn('position', 'integer', (c) => c.notNull().defaultTo(0))
    .addForeignKeyConstraint('model_routes_model', ['model_id'], 'models', ['id'], (fk) => fk.onDelete('cascade'))
    .addForeignKeyConstraint('model_routes_channel', ['channel_id'], 'channels', ['id'])
    .addUniqueConstraint('model_routes_unique', ['model_id', 'channel_id', 'upstream_model'])
    .execute();
  await sql`INSERT INTO model_routes (model_id, channel_id, upstream_model) SELECT id, channel_id, upstream_model FROM models`.execute(db);
  const fks = await sql<{ name: string }>`
    SELECT CONSTRAINT_NAME AS name FROM information_schema.KEY_COLUMN_USAGE
    WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'models' AND COLUMN_NAME = 'channel_id' AND REFERENCED_TABLE_NAME IS NOT NULL`.execute(
    db,
  );
  for (const { name } of fks.rows) await db.schema.alterTable('models').dropConstraint(name).execute();
  await db.schema.alterTable('models').dropColumn('channel_id').dropColumn('upstream_model').execute();

  await db.schema.alterTable('api_keys').addColumn('allowed_models', 'text').addColumn('max_concurrent_requests', 'integer').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('api_keys').dropColumn('allowed_models').dropColumn('max_concurrent_requests').execute();
  await db.schema
    .alterTable('models')
    .addColumn('channel_id', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('upstream_model', 'varchar(200)', (c) => c.notNull().defaultTo(''))
    .execute();
  // each model keeps the route it tried first
  await sql`
    UPDATE models m JOIN model_routes r ON r.id = (
      SELECT r2.id FROM model_routes r2 WHERE r2.model_id = m.id ORDER BY r2.priority DESC, r2.weight DESC, r2.position, r2.id LIMIT 1)
    SET m.channel_id = r.channel_id, m.upstream_model = r.upstream_model`.execute(db);
  await db.schema.dropTable('model_routes').execute();
}
