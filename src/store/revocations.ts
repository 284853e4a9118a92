// Revoked tokens, durably: a user's token generation (on users) and the sessions logged out
// before their token expired. Redis only carries the news between instances; this is the truth.

import { eq, lt, sql } from "drizzle-orm";

import type { Db } from "./client.js";
import { revokedSessions, users } from "./schema.js";

/** What the store says of a token's user and session: null when the user no longer exists. */
export interface StoredStanding {
  generation: number;
  sessionRevoked: boolean;
}

export async function readStanding(db: Db, userId: number, sessionId: string): Promise<StoredStanding | null> {
  const [row] = await db
    .select({
      generation: users.tokenGeneration,
      sessionRevoked: sql<boolean>`exists (select 1 from ${revokedSessions} where ${revokedSessions.sessionId} = ${sessionId})`,
    })
    .from(users)
    .where(eq(users.id, userId))
    .limit(1);
  return row ?? null;
}

/** Revokes one session until its token's expiry, and prunes revocations whose token has
 * expired since (they refuse nothing more than expiry does), so the table stays as small as
 * the logouts of one token lifetime. */
export async function revokeSession(db: Db, sessionId: string, tokenExpiresAt: Date): Promise<void> {
  await db.insert(revokedSessions).values({ sessionId, expiresAt: tokenExpiresAt }).onConflictDoNothing();
  await db.delete(revokedSessions).where(lt(revokedSessions.expiresAt, sql`now()`));
}
