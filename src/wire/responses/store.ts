import { sql } from 'kysely';
import type { Db } from '../../db/index.js';
import type { ChatMessage } from './request.js';

/**
 * Stored responses (SPEC §1b, table `responses`): kept 30 days for the account that made them. Stored by
 * the worker right after the request was billed, under the response id (derived from the request id), with
 * INSERT IGNORE: a re-run job never stores twice.
 */

export const RESPONSE_TTL_MS = 30 * 24 * 3600 * 1000;
/** Rows one sweep deletes at most per statement. */
const SWEEP_BATCH = 500;

export interface StoredResponse {
  id: string;
  userId: number;
  keyId: number;
  model: string;
  conversation: ChatMessage[];
  response: Record<string, unknown>;
}

export async function storeResponse(db: Db, stored: StoredResponse, now = Date.now()): Promise<void> {
  await db
    .insertInto('responses')
    .ignore()
    .values({
      id: stored.id,
      user_id: stored.userId,
      key_id: stored.keyId,
      model: stored.model,
      conversation: JSON.stringify(stored.conversation),
      response: JSON.stringify(stored.response),
      expires_at: new Date(now + RESPONSE_TTL_MS),
    })
    .execute();
}

/** A live stored response of this account: its row's two JSON texts, or undefined (unknown, expired or another account's). */
async function liveRow(db: Db, id: string, userId: number, column: 'conversation' | 'response'): Promise<string | undefined> {
  const row = await db
    .selectFrom('responses')
    .select(column)
    .where('id', '=', id)
    .where('user_id', '=', userId)
    .where('expires_at', '>', sql<Date>`NOW(3)`)
    .executeTakeFirst();
  return row?.[column];
}

/** The conversation a `previous_response_id` continues, or undefined. */
export async function loadConversation(db: Db, id: string, userId: number): Promise<ChatMessage[] | undefined> {
  const text = await liveRow(db, id, userId, 'conversation');
  return text === undefined ? undefined : (JSON.parse(text) as ChatMessage[]);
}

/** The response object `GET /v1/responses/{id}` shows, or undefined. */
export async function loadResponse(db: Db, id: string, userId: number): Promise<Record<string, unknown> | undefined> {
  const text = await liveRow(db, id, userId, 'response');
  return text === undefined ? undefined : (JSON.parse(text) as Record<string, unknown>);
}

/** Deletes expired rows, SWEEP_BATCH at a time, at most `maxBatches` statements; returns how many went. */
export async function sweepExpiredResponses(db: Db, maxBatches = 20): Promise<number> {
  let deleted = 0;
  for (let i = 0; i < maxBatches; i++) {
    const result = await sql`DELETE FROM responses WHERE expires_at <= NOW(3) ORDER BY expires_at LIMIT ${SWEEP_BATCH}`.execute(db);
    const n = Number(result.numAffectedRows ?? 0n);
    deleted += n;
    if (n < SWEEP_BATCH) break;
  }
  return deleted;
}
