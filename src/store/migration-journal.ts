// Applies this build's migrations with what the store's journal (drizzle.__drizzle_migrations)
// says checked first: a store a newer Pulse migrated, or a database that is not Pulse's, is
// refused before anything is written, and a failure is one line naming its migration.

import { readMigrationFiles } from "drizzle-orm/migrator";
import { readFileSync } from "node:fs";
import path from "node:path";

import { counted } from "../counted.js";
import { reasonOf, rootCause, StartupError } from "../startup-error.js";

/** One statement's rows, on the session that migrates (pg.Client or PGlite). */
export type RunQuery = <T>(text: string) => Promise<T[]>;

/** What a migration run did, counted on the session holding the migration lock: an instance
 * that waited for another's run counts none of that run's. */
export interface MigrationCount {
  applied: number;
  /** Migrations the store has had, these included. */
  total: number;
}

interface KnownMigration {
  tag: string;
  /** Drizzle records it as the journal row's created_at. */
  when: number;
}

function knownMigrations(folder: string): KnownMigration[] {
  return (JSON.parse(readFileSync(path.join(folder, "meta", "_journal.json"), "utf8")) as { entries: KnownMigration[] }).entries;
}

/** A migration's journal time before it was edited, with the time it has had since. main
 * shipped 0007's first version for four commits (01bacf8 to a99455b, its connection index
 * without the owner); a store it migrated has that first time as its last. Migration 0009
 * rebuilds that index whatever its columns, so such a store is the edited 0007's but for its
 * journal row. */
const RETIMED = new Map([[1796351205548, 1796353031692]]);

/** created_at of every migration the store records, a re-timed one's as it is now; none in a
 * store never migrated. */
async function appliedTimes(run: RunQuery): Promise<number[]> {
  const [journal] = await run<{ present: boolean }>("SELECT to_regclass('drizzle.__drizzle_migrations') IS NOT NULL AS present");
  if (!journal?.present) return [];
  const rows = await run<{ created_at: string | null }>("SELECT created_at FROM drizzle.__drizzle_migrations");
  return rows.map((row) => Number(row.created_at)).map((when) => RETIMED.get(when) ?? when);
}

/** Drizzle reads the store's last created_at, and would apply a re-timed migration again over
 * itself: its journal row gets the migration's time now, before Drizzle reads it. */
async function retimeJournal(run: RunQuery): Promise<void> {
  for (const [was, now] of RETIMED) await run(`UPDATE drizzle.__drizzle_migrations SET created_at = ${now} WHERE created_at = ${was}`);
}

/** Drizzle applies only migrations newer than the store's last, so under a newer Pulse's
 * journal it applies nothing and reports success: the running code would then meet a schema
 * it does not know. */
function refuseNewer(setting: string, applied: number[], known: KnownMigration[]): void {
  const knownTimes = new Set(known.map((m) => m.when));
  if (applied.every((when) => knownTimes.has(when))) return;
  throw new StartupError(
    `${setting}: the store's schema is newer than this Pulse (${counted(applied.length, "migration")} applied, this build knows ${known.length}); run the newer Pulse or restore a backup`,
  );
}

/** A database with tables but no journal is someone else's: Pulse's first migration would fail
 * halfway on a name taken (users) or, worse, succeed beside their tables. */
async function refuseForeign(setting: string, run: RunQuery): Promise<void> {
  // An extension's own tables (PostGIS's spatial_ref_sys, which its images install in every new
  // database) are no one's data.
  const tables = await run<{ name: string }>(
    `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
        AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
      ORDER BY c.relname LIMIT 4`,
  );
  if (tables.length === 0) return;
  const names = tables.slice(0, 3).map((t) => t.name).join(", ") + (tables.length > 3 ? ", ..." : "");
  throw new StartupError(
    `${setting}: the database is not Pulse's (its public schema has tables, ${names}, but no Pulse migrations); point ${setting} at an empty database of Pulse's own`,
  );
}

/** One line naming the migration whose statement failed (the one whose text Drizzle reports). */
function migrationFailed(setting: string, err: unknown, folder: string, known: KnownMigration[]): StartupError {
  const query = (err as { query?: unknown } | null)?.query;
  const index = typeof query === "string" ? readMigrationFiles({ migrationsFolder: folder }).findIndex((m) => m.sql.includes(query)) : -1;
  const which = index >= 0 ? `migration ${known[index]!.tag}` : "migrating the store";
  // Drizzle runs every pending migration in one transaction: a failure rolls them all back.
  return new StartupError(`${setting}: ${which} failed (${reasonOf(rootCause(err))}); no pending migration was applied: fix the cause, then start or migrate again`);
}

/** How many of `known` a store that applied `applied` has pending, by Drizzle's rule: those
 * newer than its last (all of them for a store never migrated). */
function pendingOf(applied: number[], known: KnownMigration[]): number {
  const last = Math.max(...applied);
  return known.filter((m) => m.when > last).length;
}

/** Refuses (StartupError) a store this build's migrations do not describe exactly: a newer
 * Pulse's, which may hold what this build does not know (a sealed column of its own, which a
 * rotation would leave under the key it reports gone), or one with migrations pending. For the
 * commands that work on the store without migrating it. */
export async function refuseNotCurrent(setting: string, folder: string, run: RunQuery): Promise<void> {
  const known = knownMigrations(folder);
  const applied = await appliedTimes(run);
  refuseNewer(setting, applied, known);
  if (applied.length === 0) throw new StartupError(`${setting}: no Pulse store there (no migrations applied); run this with the server's settings`);
  const pending = pendingOf(applied, known);
  if (pending > 0) throw new StartupError(`${setting}: the store has ${counted(pending, "migration")} pending for this Pulse; apply them first (\`npx pulse migrate\`, or start the upgraded server)`);
}

/** Told how many migrations are about to be applied, before the first (they may take long). */
export type OnApplying = (pending: number) => void;

/** Applies the migrations in `folder` by `apply`, on the session `run` queries; with none
 * pending, `apply` (and its own journal queries) does not run. */
export async function migrateChecked(setting: string, folder: string, run: RunQuery, apply: () => Promise<void>, onApplying?: OnApplying): Promise<MigrationCount> {
  const known = knownMigrations(folder);
  const before = await appliedTimes(run);
  refuseNewer(setting, before, known);
  if (before.length === 0) await refuseForeign(setting, run);
  const pending = pendingOf(before, known);
  if (pending === 0) return { applied: 0, total: before.length };
  onApplying?.(pending);
  if (before.length > 0) await retimeJournal(run);
  try {
    await apply();
  } catch (err) {
    throw err instanceof StartupError ? err : migrationFailed(setting, err, folder, known);
  }
  const total = (await appliedTimes(run)).length;
  return { applied: total - before.length, total };
}
