// Repository of user accounts.

import { and, eq, sql } from "drizzle-orm";

import type { Db } from "./client.js";
import { dbConnections, users, type UserRow } from "./schema.js";

/** Inserts a user; null when the (lower-cased) email is taken. */
export async function insertUser(
  db: Db,
  input: { name: string; email: string; passwordHash: string },
): Promise<UserRow | null> {
  const [row] = await db
    .insert(users)
    .values({ ...input, email: input.email.toLowerCase() })
    .onConflictDoNothing({ target: users.email })
    .returning();
  return row ?? null;
}

export async function findUserByEmail(db: Db, email: string): Promise<UserRow | null> {
  const [row] = await db.select().from(users).where(eq(users.email, email.toLowerCase())).limit(1);
  return row ?? null;
}

export async function getUser(db: Db, id: number): Promise<UserRow | null> {
  const [row] = await db.select().from(users).where(eq(users.id, id)).limit(1);
  return row ?? null;
}

/** Sets a new password and raises the token generation, which revokes every token issued
 * before; null when the user no longer exists. */
/** Sets the user's password if it is still `previousHash` (the one the caller confirmed): null
 * when it is not, or when there is no such user. */
export async function setPassword(db: Db, id: number, passwordHash: string, previousHash: string): Promise<UserRow | null> {
  const [row] = await db
    .update(users)
    .set({ passwordHash, tokenGeneration: sql`${users.tokenGeneration} + 1` })
    .where(and(eq(users.id, id), eq(users.passwordHash, previousHash)))
    .returning();
  return row ?? null;
}

/** Replaces the user's password hash by one of the same password at another cost, if it is still
 * `previousHash` (a change of password meanwhile wins); tokens stay valid. */
export async function rehashPassword(db: Db, id: number, passwordHash: string, previousHash: string): Promise<void> {
  await db
    .update(users)
    .set({ passwordHash })
    .where(and(eq(users.id, id), eq(users.passwordHash, previousHash)));
}

/** Deletes a user and everything they own (rows cascade); the ids of the connections that went
 * with them, so their connectors can be closed, or null when there was no such user. */
export async function deleteUser(db: Db, id: number): Promise<number[] | null> {
  return db.transaction(async (tx) => {
    const connections = await tx.delete(dbConnections).where(eq(dbConnections.ownerId, id)).returning({ id: dbConnections.id });
    const [user] = await tx.delete(users).where(eq(users.id, id)).returning({ id: users.id });
    return user ? connections.map((c) => c.id) : null;
  });
}
