// Repository of API keys, owner-scoped, and the lookup by secret hash that authenticates one.

import { and, asc, eq, sql } from "drizzle-orm";

import type { Db } from "./client.js";
import { apiKeys, type ApiKeyRow } from "./schema.js";

export type NewApiKey = Omit<typeof apiKeys.$inferInsert, "id" | "createdAt" | "lastUsedAt">;

export async function insertApiKey(db: Db, input: NewApiKey): Promise<ApiKeyRow> {
  const [row] = await db.insert(apiKeys).values(input).returning();
  return row!;
}

export async function listApiKeys(db: Db, ownerId: number): Promise<ApiKeyRow[]> {
  return db.select().from(apiKeys).where(eq(apiKeys.ownerId, ownerId)).orderBy(asc(apiKeys.id));
}

export async function deleteApiKey(db: Db, ownerId: number, id: number): Promise<boolean> {
  const rows = await db
    .delete(apiKeys)
    .where(and(eq(apiKeys.id, id), eq(apiKeys.ownerId, ownerId)))
    .returning({ id: apiKeys.id });
  return rows.length > 0;
}

/** The key whose secret hashes to `secretHash`, expired or not; null when there is none. */
export async function findApiKeyByHash(db: Db, secretHash: string): Promise<ApiKeyRow | null> {
  const [row] = await db.select().from(apiKeys).where(eq(apiKeys.secretHash, secretHash)).limit(1);
  return row ?? null;
}

export async function markApiKeyUsed(db: Db, id: number): Promise<void> {
  await db.update(apiKeys).set({ lastUsedAt: sql`now()` }).where(eq(apiKeys.id, id));
}
