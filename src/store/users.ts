// Repository of user accounts.

import { eq } from "drizzle-orm";

import type { Db } from "./client.js";
import { users, type UserRow } from "./schema.js";

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
