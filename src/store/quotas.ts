// What one user may keep in the metadata store: saved connections, monitored tables,
// notification channels, API keys (USER_MAX_*, README's Configuration). Without a ceiling one
// account, or a script of theirs gone wrong, could fill the store, give the scheduler work
// without end, and make its own listings (not paged) as large as it liked.

import { count, eq, sql } from "drizzle-orm";

import type { QuotaConfig } from "../config.js";
import { DomainError } from "../errors.js";
import type { Db } from "./client.js";
import { violatesForeignKey } from "./unavailable.js";
import { apiKeys, dbConnections, monitoredTables, notificationChannels } from "./schema.js";

type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];

const KINDS = {
  connections: { table: dbConnections, owner: dbConnections.ownerId, what: "saved database connections", remedy: "delete one first" },
  monitoredTables: { table: monitoredTables, owner: monitoredTables.ownerId, what: "monitored tables", remedy: "stop monitoring one first" },
  channels: { table: notificationChannels, owner: notificationChannels.ownerId, what: "notification channels", remedy: "delete one first" },
  apiKeys: { table: apiKeys, owner: apiKeys.ownerId, what: "API keys", remedy: "revoke one first" },
} as const;

export type QuotaKind = keyof typeof KINDS;

/** Advisory-lock class of quota checks, the user's id the other half of the key (the two-int
 * keys are apart from the one-bigint keys of the lease and migration locks). */
const QUOTA_LOCK_CLASS = 7_311;

async function held(db: Db | Tx, userId: number, kind: QuotaKind): Promise<number> {
  const { table, owner } = KINDS[kind];
  const [row] = await db.select({ n: count() }).from(table).where(eq(owner, userId));
  return row?.n ?? 0;
}

function refusal(quotas: QuotaConfig, kind: QuotaKind): DomainError {
  const { what, remedy } = KINDS[kind];
  return new DomainError("quota_exceeded", `You keep the most ${what} allowed (${quotas[kind]} per user): ${remedy}`, { limit: quotas[kind] });
}

/** Refuses at once a user at the ceiling, before work that the insert would waste (connecting to
 * the database, reading its schema). insertWithinQuota still decides. */
export async function assertUnderQuota(db: Db, quotas: QuotaConfig, userId: number, kind: QuotaKind): Promise<void> {
  if ((await held(db, userId, kind)) >= quotas[kind]) throw refusal(quotas, kind);
}

/** Runs `insert` unless the user already keeps the most allowed: the count and the insert in one
 * transaction holding a lock of that user's, so requests at once cannot pass the ceiling together. */
export async function insertWithinQuota<R>(db: Db, quotas: QuotaConfig, userId: number, kind: QuotaKind, insert: (tx: Db) => Promise<R>): Promise<R> {
  try {
    return await db.transaction(async (tx) => {
      await tx.execute(sql`SELECT pg_advisory_xact_lock(${QUOTA_LOCK_CLASS}::int, ${userId}::int)`);
      if ((await held(tx, userId, kind)) >= quotas[kind]) throw refusal(quotas, kind);
      return insert(tx);
    });
  } catch (err) {
    // What it would belong to (the account, a monitored table's connection) was deleted while
    // the request checked it and connected: the client's race, not the store failing.
    if (violatesForeignKey(err)) throw new DomainError("not_found", "What it would belong to (its account, or the connection it is on) was deleted meanwhile");
    throw err;
  }
}
