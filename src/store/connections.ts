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

export async function updateConnection(
  db: Db,
  ownerId: number,
  id: number,
  patch: ConnectionPatch,
): Promise<DbConnectionRow | null> {
  const [row] = await db
    .update(dbConnections)
    .set(patch)
    .where(and(eq(dbConnections.id, id), eq(dbConnections.ownerId, ownerId)))
    .returning();
  return row ?? null;
}

export async function deleteConnection(db: Db, ownerId: number, id: number): Promise<boolean> {
  const rows = await db
    .delete(dbConnections)
    .where(and(eq(dbConnections.id, id), eq(dbConnections.ownerId, ownerId)))
    .returning({ id: dbConnections.id });
  return rows.length > 0;
}
