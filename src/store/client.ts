// Opens the metadata store: embedded PGlite under DATA_DIR, or a real PostgreSQL via
// DATABASE_URL. Both speak the same SQL, so one Drizzle schema and one migration set serve both.

import { PGlite } from "@electric-sql/pglite";
import { sql } from "drizzle-orm";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { migrate as migratePglite } from "drizzle-orm/pglite/migrator";
import { drizzle as drizzlePg } from "drizzle-orm/node-postgres";
import { migrate as migratePg } from "drizzle-orm/node-postgres/migrator";
import pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { finished } from "node:stream/promises";

import { projectPath } from "../paths.js";
import { reasonOf, StartupError, whereOf } from "../startup-error.js";
import { makeOwnerOnly } from "./owner-only.js";
import { lockDataDir } from "./data-dir-lock.js";
import * as schema from "./schema.js";

export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface Store {
  db: Db;
  kind: "pglite" | "postgresql";
  /** Applies pending migrations; safe to call from several instances at once. */
  migrate(): Promise<void>;
  /** One cheap round trip, for /health. */
  ping(): Promise<void>;
  /** Appends rows to `table` by COPY: `rows` in COPY's text format, one line per row, the
   * columns in `columns`' order. Cheaper for the store than an INSERT per batch (the audit
   * trail's writer, bench/RESULTS.md). */
  copyRows(table: string, columns: readonly string[], rows: string): Promise<void>;
  close(): Promise<void>;
}

const migrationsFolder = projectPath("migrations");
/** Arbitrary constant: instances starting together take turns applying migrations. */
const MIGRATION_LOCK_KEY = 7_311_520_431;

export type StoreLocation = { databaseUrl: string } | { pgliteDir: string | null };

/** Where the configured store lives: DATABASE_URL, else PGlite under DATA_DIR. */
export const storeLocation = (config: { databaseUrl: string | undefined; dataDir: string }): StoreLocation =>
  config.databaseUrl ? { databaseUrl: config.databaseUrl } : { pgliteDir: path.join(config.dataDir, "pglite") };

export interface StoreOptions {
  /** How long one COPY (copyRows) may take before it fails as the store being unavailable. */
  copyTimeoutMs?: number;
}

/** A batch of the audit trail takes milliseconds; a COPY still running after this is talking to
 * a store that went silent (a network fault TCP has not noticed: keepalive takes minutes), and
 * the trail's single writer must not wait on it while its buffer fills. */
const COPY_TIMEOUT_MS = 30_000;

export async function openStore(location: StoreLocation, options: StoreOptions = {}): Promise<Store> {
  if ("databaseUrl" in location) return openPostgres(location.databaseUrl, options.copyTimeoutMs ?? COPY_TIMEOUT_MS);
  return openPglite(location.pgliteDir);
}

/** A request waits this long for a connection (a saturated pool, an unreachable server)
 * before it answers 503 store_unavailable. */
const CONNECTION_TIMEOUT_MS = 10_000;

async function openPostgres(url: string, copyTimeoutMs: number): Promise<Store> {
  const pool = new pg.Pool({
    connectionString: url,
    max: 10,
    application_name: "pulse",
    connectionTimeoutMillis: CONNECTION_TIMEOUT_MS,
    keepAlive: true,
    // TCP keepalive starts after 10 s idle instead of the system's 2 hours: a session to a
    // store that vanished without a word is found dead in minutes (with Linux's defaults,
    // 9 probes 75 s apart: about 11), not hours.
    keepAliveInitialDelayMillis: 10_000,
  });
  // An idle connection killed by the server (restart, failover) is already dropped by the
  // pool; without a listener its 'error' event would crash the process. The next query
  // opens a fresh connection, and /health reports the store if that fails.
  pool.on("error", () => {});
  // A checked-out client has no listener of the pool's (it takes its own off at checkout): a
  // session lost mid-COPY or mid-transaction would emit an unhandled 'error', which ends the
  // process. The statement in flight fails with the loss itself; this only keeps the process.
  pool.on("connect", (client) => client.on("error", () => {}));
  try {
    await pool.query("SELECT 1");
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw new StartupError(`DATABASE_URL: cannot connect to PostgreSQL at ${whereOf(url)} (${reasonOf(err)})`);
  }
  const db = drizzlePg(pool, { schema }) as unknown as Db;
  return {
    db,
    kind: "postgresql",
    async migrate() {
      // The migrator runs on one dedicated connection that holds the advisory lock.
      const client = new pg.Client({ connectionString: url, application_name: "pulse-migrate", connectionTimeoutMillis: CONNECTION_TIMEOUT_MS });
      await client.connect();
      try {
        await client.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK_KEY]);
        await migratePg(drizzlePg(client), { migrationsFolder });
      } finally {
        await client.end();
      }
    },
    async ping() {
      await db.execute(sql`SELECT 1`);
    },
    async copyRows(table, columns, rows) {
      const client = await pool.connect();
      try {
        // pg fails a query still unanswered after its query_timeout ("Query read timeout").
        const copy = client.query(Object.assign(copyFrom(copyStatement(table, columns, "STDIN")), { query_timeout: copyTimeoutMs }));
        copy.end(rows);
        await finished(copy);
        client.release();
      } catch (err) {
        // A COPY cut short can leave the session mid-protocol: never hand it to another query.
        client.release(err instanceof Error ? err : true);
        throw err;
      }
    },
    async close() {
      if (!pool.ended) await pool.end();
    },
  };
}

/** `table` and `columns` are Pulse's own names, never a user's. */
const copyStatement = (table: string, columns: readonly string[], source: string) =>
  `COPY ${table} (${columns.join(", ")}) FROM ${source}`;

async function openPglite(dir: string | null): Promise<Store> {
  if (!dir) return pgliteStore(await openPgliteClient(null), () => undefined);
  mkdirSync(path.dirname(dir), { recursive: true, mode: 0o700 });
  const lock = lockDataDir(dir);
  try {
    const client = await openPgliteClient(dir);
    makeOwnerOnly(dir);
    return pgliteStore(client, () => {
      try {
        makeOwnerOnly(dir);
      } catch {
        // A store directory removed while we ran: nothing left to close.
      }
      lock.release();
    });
  } catch (err) {
    lock.release();
    throw err;
  }
}

async function openPgliteClient(dir: string | null): Promise<PGlite> {
  const existing = dir !== null && existsSync(path.join(dir, "PG_VERSION"));
  const client = dir ? new PGlite(dir) : new PGlite();
  try {
    await client.waitReady;
    return client;
  } catch (err) {
    // PGlite aborts its WebAssembly PostgreSQL ("RuntimeError: Aborted()") on a store it
    // cannot recover, e.g. PANIC: could not locate a valid checkpoint record.
    if (!existing) throw err;
    throw new StartupError(
      `DATA_DIR: the embedded store ${dir} is damaged and cannot be opened (${reasonOf(err)}). ` +
        `Move it aside (mv ${dir} ${dir}.damaged) and restore it from a backup, or start with an empty store.`,
    );
  }
}

function pgliteStore(client: PGlite, unlock: () => void): Store {
  const db = drizzlePglite(client, { schema }) as unknown as Db;
  return {
    db,
    kind: "pglite",
    async migrate() {
      await migratePglite(drizzlePglite(client), { migrationsFolder });
    },
    async ping() {
      await db.execute(sql`SELECT 1`);
    },
    async copyRows(table, columns, rows) {
      // PGlite has no client stream: COPY reads the rows from its virtual /dev/blob file.
      await client.query(copyStatement(table, columns, "'/dev/blob'"), [], { blob: new Blob([rows]) });
    },
    async close() {
      try {
        if (!client.closed) await client.close();
      } finally {
        unlock();
      }
    },
  };
}
