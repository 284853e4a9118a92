// The sealed columns of the metadata store, read and rewritten a batch at a time for
// `pulse secrets rotate` (src/services/secret-rotation.ts). Raw statements on purpose: an
// update through Drizzle's builder would move a connection's updated_at, and a re-sealed
// value is no change of the connection (a user's PUT read before it must not get a 409).

import { sql } from "drizzle-orm";

import type { Db } from "./client.js";
import { rowsOf } from "./rows.js";

/** A column holding values sealed by src/auth/secrets.ts, in a table keyed by an integer `id`
 * with the owner the values are bound to in `owner_id`. */
export interface SealedColumn {
  table: "db_connections" | "notification_channels";
  column: "password_sealed" | "url_sealed";
}

export interface SealedRow {
  id: number;
  ownerId: number;
  sealed: string;
}

const select = ({ table, column }: SealedColumn) =>
  sql`SELECT id, owner_id AS "ownerId", ${sql.identifier(column)} AS sealed FROM ${sql.identifier(table)}`;

/** Up to `limit` rows after `afterId`, by id: a walk through the table that each batch keeps
 * short, however many rows there are. */
export async function sealedBatch(db: Db, where: SealedColumn, afterId: number, limit: number): Promise<SealedRow[]> {
  return rowsOf<SealedRow>(await db.execute(sql`${select(where)} WHERE id > ${afterId} ORDER BY id LIMIT ${limit}`));
}

/** The rows `ids` as they are now (those deleted meanwhile are not there). */
export async function sealedRows(db: Db, where: SealedColumn, ids: readonly number[]): Promise<SealedRow[]> {
  if (ids.length === 0) return [];
  return rowsOf<SealedRow>(await db.execute(sql`${select(where)} WHERE id IN (${sql.join(ids.map((id) => sql`${id}`), sql`, `)}) ORDER BY id`));
}

export interface Reseal {
  id: number;
  /** The sealed value as read: the row is rewritten only while it still holds it. */
  was: string;
  next: string;
}

/** Writes each change in one statement, each row only if its value is still the one read
 * (compare-and-set: a value the service wrote since is never overwritten); answers the ids
 * written. */
export async function replaceSealed(db: Db, where: SealedColumn, changes: readonly Reseal[]): Promise<Set<number>> {
  if (changes.length === 0) return new Set();
  const column = sql.identifier(where.column);
  const values = sql.join(
    changes.map((c) => sql`(${c.id}::int, ${c.was}::text, ${c.next}::text)`),
    sql`, `,
  );
  const result = await db.execute(sql`
    UPDATE ${sql.identifier(where.table)} AS t SET ${column} = v.next
    FROM (VALUES ${values}) AS v(id, was, next)
    WHERE t.id = v.id AND t.${column} = v.was
    RETURNING t.id`);
  return new Set(rowsOf<{ id: number }>(result).map((r) => r.id));
}
