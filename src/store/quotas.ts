// What one user may keep in the metadata store: saved connections, monitored tables,
// notification channels, API keys, and the check runs an hour their tables make (USER_MAX_*,
// README's Configuration). Without a ceiling one account, or a script of theirs gone wrong,
// could fill the store, give the scheduler work without end, and make its own listings (not
// paged) as large as it liked. Each check run is a row kept MONITOR_RUN_RETENTION_DAYS, skipped
// ones too: 2,000 tables of 50 checks a minute wrote 100,000 rows a minute.

import { and, count, eq, ne, sql } from "drizzle-orm";

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

/** Holds, until the transaction ends, the lock under which a user's quotas are checked and
 * changed: requests at once cannot pass a ceiling together. */
export async function lockQuotasOf(tx: Db | Tx, userId: number): Promise<void> {
  await tx.execute(sql`SELECT pg_advisory_xact_lock(${QUOTA_LOCK_CLASS}::int, ${userId}::int)`);
}

/** The check runs an hour of a table running `checks` every `intervalSeconds`. */
export const checkRunsPerHour = (table: { checks: number; intervalSeconds: number }) => (table.checks * 3600) / table.intervalSeconds;

/** Refuses a monitored table whose checks (`checks` every `intervalSeconds`: a schedule's
 * shortest gap) would take the user's enabled tables past USER_MAX_CHECK_RUNS_PER_HOUR; the
 * table `replacing` (being changed) counts as it will be. Call under lockQuotasOf. */
export async function assertCheckRunsWithin(
  tx: Db | Tx,
  quotas: QuotaConfig,
  userId: number,
  table: { checks: number; intervalSeconds: number; replacing?: number | undefined },
): Promise<void> {
  const others = and(eq(monitoredTables.ownerId, userId), eq(monitoredTables.enabled, true), table.replacing === undefined ? undefined : ne(monitoredTables.id, table.replacing));
  const [row] = await tx
    .select({ perHour: sql<string | number | null>`sum(jsonb_array_length(${monitoredTables.checks}) * 3600.0 / ${monitoredTables.intervalSeconds})` })
    .from(monitoredTables)
    .where(others);
  const perHour = Number(row?.perHour ?? 0) + checkRunsPerHour(table);
  const limit = quotas.checkRunsPerHour;
  if (perHour > limit) {
    throw new DomainError(
      "quota_exceeded",
      `Your enabled monitored tables would run ${Math.ceil(perHour)} checks an hour, past the ${limit} allowed per user (USER_MAX_CHECK_RUNS_PER_HOUR): run them less often, with fewer checks, or disable some`,
      { limit },
    );
  }
}

/** Runs `insert` unless the user already keeps the most allowed: the count and the insert in one
 * transaction holding a lock of that user's, so requests at once cannot pass the ceiling together. */
export async function insertWithinQuota<R>(db: Db, quotas: QuotaConfig, userId: number, kind: QuotaKind, insert: (tx: Db) => Promise<R>): Promise<R> {
  try {
    return await db.transaction(async (tx) => {
      await lockQuotasOf(tx, userId);
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
