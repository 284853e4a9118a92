// Repository of saved database connections. Every read and write is scoped by owner, so a
// caller can never reach another user's row, whatever id it sends.

import { and, asc, eq } from "drizzle-orm";

import type { Db } from "./client.js";
import { dbConnections, type DbConnectionRow } from "./schema.js";

export type NewConnection = Omit<typeof dbConnections.$inferInsert, "id" | "createdAt" | "updatedAt">;
export type ConnectionPatch = Partial<Omit<NewConnection, "ownerId">>;

export async function insertConnection(db: Db, input: NewConnection): Promise<DbConnectionRow> {
  const [row] = await db.insert(dbConnections).values(input).returning();
  return row!;
}

export async function listConnections(db: Db, ownerId: number): Promise<DbConnectionRow[]> {
  return db.select().from(dbConnections).where(eq(dbConnections.ownerId, ownerId)).orderBy(asc(dbConnections.id));
}

export async function getConnection(db: Db, ownerId: number, id: number): Promise<DbConnectionRow | null> {
  const [row] = await db
    .select()
    .from(dbConnections)
    .where(and(eq(dbConnections.id, id), eq(dbConnections.ownerId, ownerId)))
    .limit(1);
  return row ?? null;
}

/** Saves `patch`, made from the connection as read at `readAt` (its updated_at then): null when
 * it is gone, "changed" when another change was saved since (the patch carries every setting of
 * the row it was made from, and would undo that one). */
export async function updateConnection(
  db: Db,
  ownerId: number,
  id: number,
  patch: ConnectionPatch,
  readAt: Date,
): Promise<DbConnectionRow | null | "changed"> {
  const owned = and(eq(dbConnections.id, id), eq(dbConnections.ownerId, ownerId));
  return db.transaction(async (tx) => {
    const [current] = await tx.select({ updatedAt: dbConnections.updatedAt }).from(dbConnections).where(owned).for("update");
    if (!current) return null;
    if (current.updatedAt.getTime() !== readAt.getTime()) return "changed";
    const [row] = await tx.update(dbConnections).set(patch).where(owned).returning();
    return row ?? null;
  });
}

export async function deleteConnection(db: Db, ownerId: number, id: number): Promise<boolean> {
  const rows = await db
    .delete(dbConnections)
    .where(and(eq(dbConnections.id, id), eq(dbConnections.ownerId, ownerId)))
    .returning({ id: dbConnections.id });
  return rows.length > 0;
}
