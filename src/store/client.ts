// Opens the metadata store: embedded PGlite under DATA_DIR, or a real PostgreSQL via
// DATABASE_URL. Both speak the same SQL, so one Drizzle schema and one migration set serve both.

import { PGlite } from "@electric-sql/pglite";
import { sql } from "drizzle-orm";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { migrate as migratePglite } from "drizzle-orm/pglite/migrator";
import { readMigrationFiles } from "drizzle-orm/migrator";
import { drizzle as drizzlePg } from "drizzle-orm/node-postgres";
import { migrate as migratePg } from "drizzle-orm/node-postgres/migrator";
import pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { accessSync, constants as fsConstants, existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { finished } from "node:stream/promises";

import { DEFAULT_STORE_QUERY_TIMEOUT_MS } from "../config.js";
import { projectPath } from "../paths.js";
import { dataDirError, reasonOf, StartupError, whereOf } from "../startup-error.js";
import { makeOwnerOnly } from "./owner-only.js";
import { rowsOf } from "./rows.js";
import { isStoreUnavailable, sqlStateOf } from "./unavailable.js";
import { lockDataDir } from "./data-dir-lock.js";
import { migrateChecked, refuseNotCurrent, type MigrationCount, type OnApplying } from "./migration-journal.js";
import * as schema from "./schema.js";

export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface Store {
  db: Db;
  kind: "pglite" | "postgresql";
  /** Applies pending migrations; safe to call from several instances at once. Refuses a store
   * a newer Pulse migrated, and a database that is not Pulse's (StartupError). `onApplying`
   * hears how many are pending before they run, never when none are. */
  migrate(onApplying?: OnApplying): Promise<MigrationCount>;
  /** Refuses a store whose schema is not this build's (migration-journal.ts, refuseNotCurrent). */
  refuseNotCurrent(): Promise<void>;
  /** One cheap round trip, for /health. */
  ping(): Promise<void>;
  /** Appends rows to `table` by COPY: `rows` in COPY's text format, one line per row, the
   * columns in `columns`' order. Cheaper for the store than an INSERT per batch (the audit
   * trail's writer, bench/RESULTS.md). `andThen`, a statement, commits with the rows or not
   * at all. */
  copyRows(table: string, columns: readonly string[], rows: string, andThen?: Statement): Promise<void>;
  close(): Promise<void>;
}

const migrationsFolder = projectPath("migrations");
/** Arbitrary constant: instances starting together take turns applying migrations. */
const MIGRATION_LOCK_KEY = 7_311_520_431;
/** How long a migration's statement waits for a table's lock, and how many times the migration
 * is tried (each failed try rolls back whole; the waits between grow: 5, 10, 15, 20 s). */
const MIGRATION_LOCK_TIMEOUT_MS = 5_000;
const MIGRATION_ATTEMPTS = 5;
const LOCK_NOT_AVAILABLE = "55P03";
/** What a migration's own statement may take, whatever it is: the store cancels it past this
 * (its statement_timeout), and a store gone silent mid-migration ends start-up after this
 * instead of holding it for ever. An index on a large table may rightly take long (README,
 * Upgrading). Every other question on the migration's session (the lock, the journal, Drizzle's
 * bookkeeping) is quick, and bounded by CONNECTION_TIMEOUT_MS. */
const MIGRATION_STATEMENT_TIMEOUT_MS = 60 * 60_000;
/** How long an instance waits for another's migration (it holds the lock while it migrates)
 * before start-up gives up: longer than one of its statements may take. And how often it asks
 * whether the lock is free. */
const MIGRATION_LOCK_WAIT_MS = MIGRATION_STATEMENT_TIMEOUT_MS + 5 * 60_000;
const MIGRATION_LOCK_POLL_MS = 1_000;

/** A statement with its parameters ($1, $2...). */
export interface Statement {
  text: string;
  values: unknown[];
}

export type StoreLocation = { databaseUrl: string; queryTimeoutMs?: number } | { pgliteDir: string | null };

/** Where the configured store lives: DATABASE_URL, else PGlite under DATA_DIR. */
export const storeLocation = (config: { databaseUrl: string | undefined; storeQueryTimeoutMs: number; dataDir: string }): StoreLocation =>
  config.databaseUrl ? { databaseUrl: config.databaseUrl, queryTimeoutMs: config.storeQueryTimeoutMs } : { pgliteDir: path.join(config.dataDir, "pglite") };

/** Takes the migration lock, waiting while another instance migrates (MIGRATION_LOCK_WAIT_MS
 * at most); each question bounded (the session's query_timeout), so a store that stops
 * answering ends start-up in one line. */
async function takeMigrationLock(client: pg.Client, url: string): Promise<void> {
  const deadline = Date.now() + MIGRATION_LOCK_WAIT_MS;
  const question: pg.QueryConfig<number[]> = { text: "SELECT pg_try_advisory_lock($1) AS taken", values: [MIGRATION_LOCK_KEY] };
  for (;;) {
    let taken: boolean;
    try {
      const result = await client.query<{ taken: boolean }>(question);
      taken = result.rows[0]!.taken;
    } catch (err) {
      throw new StartupError(`DATABASE_URL: PostgreSQL at ${whereOf(url)} stopped answering while this instance waited for the migration lock (${reasonOf(err)})`);
    }
    if (taken) return;
    if (Date.now() > deadline) {
      throw new StartupError(`DATABASE_URL: another instance has been migrating the store at ${whereOf(url)} for ${MIGRATION_LOCK_WAIT_MS / 60_000} minutes; start this one once it has finished`);
    }
    await new Promise((resolve) => setTimeout(resolve, MIGRATION_LOCK_POLL_MS));
  }
}

export async function openStore(location: StoreLocation): Promise<Store> {
  if ("databaseUrl" in location) return openPostgres(location.databaseUrl, location.queryTimeoutMs ?? DEFAULT_STORE_QUERY_TIMEOUT_MS);
  return openPglite(location.pgliteDir);
}

/** A request waits this long for a connection (a saturated pool, an unreachable server)
 * before it answers 503 store_unavailable; no longer than a query may take (STORE_QUERY_TIMEOUT_MS
 * and the grace below), so that behind a store gone silent, a request queued for a session
 * answers within the bound a query on one does. */
const CONNECTION_TIMEOUT_MS = 10_000;
/** How much longer than the store's own statement timeout pg waits for an answer: past it, the
 * store is not slow but gone silent. */
const SILENT_STORE_GRACE_MS = 2_000;

async function openPostgres(url: string, queryTimeoutMs: number): Promise<Store> {
  const pool = new pg.Pool({
    connectionString: url,
    max: 10,
    application_name: "pulse",
    connectionTimeoutMillis: Math.min(CONNECTION_TIMEOUT_MS, queryTimeoutMs + SILENT_STORE_GRACE_MS),
    // Every statement, the audit trail's COPY included, is bounded twice. The store cancels
    // one still running after queryTimeoutMs and rolls it back (57014: a write that timed out
    // never commits behind the 503 that said it failed), and a session idle inside a
    // transaction whose client vanished is ended, so it holds no lock. A store gone silent
    // cancels nothing: pg gives up on it a little later ("Query read timeout") and the pool
    // discards the session, where TCP would take minutes. Both answer 503 store_unavailable.
    statement_timeout: queryTimeoutMs,
    idle_in_transaction_session_timeout: queryTimeoutMs,
    query_timeout: queryTimeoutMs + SILENT_STORE_GRACE_MS,
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
  let encoding: string | undefined;
  try {
    encoding = (await pool.query<{ server_encoding: string }>("SHOW server_encoding")).rows[0]?.server_encoding;
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw new StartupError(`DATABASE_URL: cannot connect to PostgreSQL at ${whereOf(url)} (${reasonOf(err)})`);
  }
  // Users' text (a statement in the audit trail, a name) is any Unicode. A database in an
  // encoding of fewer characters (LATIN1...) refuses some as data, and the audit trail takes a
  // batch of nothing but refused records for the store failing: one user's statements would
  // stop everyone's. SQL_ASCII stores the bytes as sent.
  if (encoding !== "UTF8" && encoding !== "SQL_ASCII") {
    await pool.end().catch(() => undefined);
    throw new StartupError(
      `DATABASE_URL: the database at ${whereOf(url)} is encoded in ${encoding}, which cannot hold every character of users' text; create Pulse's database with ENCODING 'UTF8'`,
    );
  }
  const db = drizzlePg(pool, { schema }) as unknown as Db;
  // Every transaction on a session of its own, never handed back broken (onOwnSession says why).
  db.transaction = (work, config) => onOwnSession(pool, (client) => (drizzlePg(client, { schema }) as unknown as Db).transaction(work, config));
  return {
    db,
    kind: "postgresql",
    async migrate(onApplying) {
      // The migrator runs on one dedicated connection that holds the advisory lock. Its quick
      // questions are bounded as a request's connection wait; only a migration's own statement
      // may take long (README, Upgrading). A lost session fails the statement waiting on it;
      // the listener keeps its 'error' event from ending the process, so start-up reports it
      // in one line instead.
      const client = new pg.Client({
        connectionString: url,
        application_name: "pulse-migrate",
        connectionTimeoutMillis: CONNECTION_TIMEOUT_MS,
        query_timeout: CONNECTION_TIMEOUT_MS,
        keepAlive: true,
        keepAliveInitialDelayMillis: 10_000,
      });
      client.on("error", () => {});
      await client.connect();
      allowLongMigrationStatements(client);
      try {
        await takeMigrationLock(client, url);
        // A migration's DDL waits for the tables it changes behind the running instances'
        // statements, and every later statement on them queues behind the DDL: a long wait
        // would stall the running instances. So it waits briefly, lets go, and tries again.
        await client.query(`SET lock_timeout = ${MIGRATION_LOCK_TIMEOUT_MS}`);
        await client.query(`SET statement_timeout = ${MIGRATION_STATEMENT_TIMEOUT_MS}`);
        const run = async <T>(text: string) => {
          try {
            return (await client.query(text)).rows as T[];
          } catch (err) {
            throw new StartupError(
              `DATABASE_URL: reading the migration journal from PostgreSQL at ${whereOf(url)} failed (${reasonOf(err)}); check that it is up and answering, then start or migrate again`,
            );
          }
        };
        return await migrateChecked("DATABASE_URL", migrationsFolder, run, async () => {
          for (let attempt = 1; ; attempt++) {
            try {
              return await migratePg(drizzlePg(client), { migrationsFolder });
            } catch (err) {
              if (sqlStateOf(err) !== LOCK_NOT_AVAILABLE || attempt === MIGRATION_ATTEMPTS) throw err;
              await new Promise((resolve) => setTimeout(resolve, attempt * MIGRATION_LOCK_TIMEOUT_MS));
            }
          }
        }, onApplying);
      } finally {
        // A silent server never acknowledges the goodbye: start-up goes on (or ends) regardless.
        await Promise.race([client.end(), new Promise((resolve) => setTimeout(resolve, 1_000).unref())]);
      }
    },
    async refuseNotCurrent() {
      await refuseNotCurrent("DATABASE_URL", migrationsFolder, async <T>(text: string) => (await pool.query(text)).rows as T[]);
    },
    async ping() {
      // A store that answers but takes no writes (a standby after a failover went the wrong way,
      // or set read-only) fails nearly every request but reads: unhealthy, not "healthy".
      const [state] = rowsOf<{ standby: boolean; read_only: string }>(
        await db.execute(sql`SELECT pg_is_in_recovery() AS standby, current_setting('transaction_read_only') AS read_only`),
      );
      if (state?.standby || state?.read_only === "on") throw new Error("the metadata store takes no writes (a standby, or read-only)");
    },
    async copyRows(table, columns, rows, andThen) {
      const client = await pool.connect();
      try {
        // Bounded by the pool's query_timeout, as every query.
        if (andThen) await client.query("BEGIN");
        const copy = client.query(copyFrom(copyStatement(table, columns, "STDIN")));
        copy.end(rows);
        await finished(copy);
        if (andThen) {
          await client.query(andThen.text, andThen.values);
          await client.query("COMMIT");
        }
        client.release();
      } catch (err) {
        // A COPY cut short can leave the session mid-protocol, or inside the transaction: never
      // hand it to another query (the server rolls back what did not commit as it closes).
        client.release(err instanceof Error ? err : true);
        throw err;
      }
    },
    async close() {
      if (!pool.ended) await pool.end();
    },
  };
}

/**
 * Runs `work` on a session of its own, and hands the session back to the pool only if it is
 * idle. Drizzle's own transaction on a pool is not safe against a store that fails: a BEGIN
 * that fails (a lost connection, a query timeout) never releases its session, a slot lost
 * for good, and a session whose statement timed out goes back to the pool while the
 * statement still runs, or mid-transaction when the ROLLBACK failed too, for the next request
 * to run into.
 */
async function onOwnSession<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  const query = client.query;
  // A statement the store left unanswered (query_timeout: it went silent) ends the session at
  // once. The ROLLBACK drizzle sends next would otherwise queue behind that statement and wait
  // out a timeout of its own: twice the bound for the request, and for the pool slot.
  client.query = function (...args: unknown[]) {
    const pending: unknown = Reflect.apply(query, client, args);
    if (pending instanceof Promise) {
      pending.catch((err: unknown) => {
        if (err instanceof Error && err.message === QUERY_READ_TIMEOUT) (client as unknown as pg.Client).connection.stream.destroy();
      });
    }
    return pending;
  } as typeof query;
  const release = (err?: Error | boolean) => {
    // The pool's next user gets the client's own query again.
    delete (client as Partial<pg.PoolClient>).query;
    client.release(err);
  };
  try {
    const result = await work(client);
    release();
    return result;
  } catch (err) {
    // A failed transaction that ROLLBACK ended leaves an idle session, worth keeping; any other
    // is destroyed (an Error passed to release does that).
    const reusable = !isStoreUnavailable(err) && client.getTransactionStatus() === "I";
    release(reusable ? undefined : err instanceof Error ? err : true);
    throw err;
  }
}

/**
 * Gives the statements of Pulse's migrations, as Drizzle's migrator sends them on `client`,
 * MIGRATION_STATEMENT_TIMEOUT_MS instead of the session's own short query_timeout: a store that
 * stops answering the journal's questions or Drizzle's bookkeeping (its journal table, BEGIN,
 * COMMIT) ends start-up in seconds, not after an hour.
 */
function allowLongMigrationStatements(client: pg.Client): void {
  const statements = new Set(readMigrationFiles({ migrationsFolder }).flatMap((m) => m.sql));
  const query = client.query;
  client.query = function (config: unknown, ...rest: unknown[]) {
    const text = (config as { text?: unknown } | null)?.text;
    // pg reads query_timeout per query too, though its types do not say so.
    const long = typeof text === "string" && statements.has(text) ? { ...(config as object), query_timeout: MIGRATION_STATEMENT_TIMEOUT_MS } : config;
    return Reflect.apply(query, client, [long, ...rest]) as unknown;
  } as typeof query;
}

/** node-postgres's error for a statement unanswered past query_timeout. */
const QUERY_READ_TIMEOUT = "Query read timeout";

/** `table` and `columns` are Pulse's own names, never a user's. */
const copyStatement = (table: string, columns: readonly string[], source: string) =>
  `COPY ${table} (${columns.join(", ")}) FROM ${source}`;

async function openPglite(dir: string | null): Promise<Store> {
  if (!dir) return pgliteStore(await openPgliteClient(null), () => undefined);
  try {
    mkdirSync(path.dirname(dir), { recursive: true, mode: 0o700 });
  } catch (err) {
    throw dataDirError("create", path.dirname(dir), err);
  }
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

/** PGlite reports a store directory it may not enter as a bare Emscripten errno, with no path. */
function refuseInaccessible(dir: string): void {
  try {
    accessSync(dir, fsConstants.R_OK | fsConstants.W_OK | fsConstants.X_OK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw dataDirError("open", dir, err);
  }
}

async function openPgliteClient(dir: string | null): Promise<PGlite> {
  if (dir) refuseInaccessible(dir);
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
    async migrate(onApplying) {
      // One process per embedded store (data-dir-lock.ts): no migration lock to take.
      const run = async <T>(text: string) => (await client.query<T>(text)).rows;
      return migrateChecked("DATA_DIR", migrationsFolder, run, () => migratePglite(drizzlePglite(client), { migrationsFolder }), onApplying);
    },
    async refuseNotCurrent() {
      await refuseNotCurrent("DATA_DIR", migrationsFolder, async <T>(text: string) => (await client.query<T>(text)).rows);
    },
    async ping() {
      await db.execute(sql`SELECT 1`);
    },
    async copyRows(table, columns, rows, andThen) {
      // PGlite has no client stream: COPY reads the rows from its virtual /dev/blob file.
      const copy = copyStatement(table, columns, "'/dev/blob'");
      if (!andThen) return void (await client.query(copy, [], { blob: new Blob([rows]) }));
      await client.transaction(async (tx) => {
        await tx.query(copy, [], { blob: new Blob([rows]) });
        await tx.query(andThen.text, andThen.values);
      });
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
