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
import { mkdirSync } from "node:fs";
import path from "node:path";

import { projectPath } from "../paths.js";
import * as schema from "./schema.js";

export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface Store {
  db: Db;
  kind: "pglite" | "postgresql";
  /** Applies pending migrations; safe to call from several instances at once. */
  migrate(): Promise<void>;
  /** One cheap round trip, for /health. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

const migrationsFolder = projectPath("migrations");
/** Arbitrary constant: instances starting together take turns applying migrations. */
const MIGRATION_LOCK_KEY = 7_311_520_431;

export type StoreLocation = { databaseUrl: string } | { pgliteDir: string | null };

/** Where the configured store lives: DATABASE_URL, else PGlite under DATA_DIR. */
export const storeLocation = (config: { databaseUrl: string | undefined; dataDir: string }): StoreLocation =>
  config.databaseUrl ? { databaseUrl: config.databaseUrl } : { pgliteDir: path.join(config.dataDir, "pglite") };

export async function openStore(location: StoreLocation): Promise<Store> {
  if ("databaseUrl" in location) return openPostgres(location.databaseUrl);
  return openPglite(location.pgliteDir);
}

async function openPostgres(url: string): Promise<Store> {
  const pool = new pg.Pool({ connectionString: url, max: 10, application_name: "pulse" });
  // An idle connection killed by the server (restart, failover) is already dropped by the
  // pool; without a listener its 'error' event would crash the process. The next query
  // opens a fresh connection, and /health reports the store if that fails.
  pool.on("error", () => {});
  const db = drizzlePg(pool, { schema }) as unknown as Db;
  return {
    db,
    kind: "postgresql",
    async migrate() {
      // The migrator runs on one dedicated connection that holds the advisory lock.
      const client = new pg.Client({ connectionString: url, application_name: "pulse-migrate" });
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
    async close() {
      if (!pool.ended) await pool.end();
    },
  };
}

async function openPglite(dir: string | null): Promise<Store> {
  if (dir) mkdirSync(dir, { recursive: true });
  const client = dir ? new PGlite(dir) : new PGlite();
  await client.waitReady;
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
    async close() {
      if (!client.closed) await client.close();
    },
  };
}
