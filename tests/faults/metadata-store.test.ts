// The metadata PostgreSQL failing under a statement or a transaction: a session whose BEGIN or
// statement timed out must never go back to the pool, or the pool runs dry (a slot lost per
// fault, until a restart) or hands the next request a dead session still inside the abandoned
// transaction. A statement past the bound is cancelled by the store itself, so a write that
// answered "unavailable" never commits later. A transaction failing on its own error (a unique
// violation) rolls back and keeps its session. A migration whose session is lost fails; the
// process goes on to report it. And what a response can do without (a result's open alerts,
// the alert count of /metrics) is waited for a second at most, one read at a time.

import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

import { sql } from "drizzle-orm";
import { drizzle as drizzlePg } from "drizzle-orm/node-postgres";
import { migrate as migratePg } from "drizzle-orm/node-postgres/migrator";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { projectPath } from "../../src/paths.js";
import { openStore } from "../../src/store/client.js";
import { HEALTH_CACHE_MS } from "../../src/services/table-health.js";
import { isStoreUnavailable } from "../../src/store/unavailable.js";
import { createHarness, type Harness } from "../support/harness.js";
import { createPgDatabase, pgAdmin, PG } from "../support/services.js";
import { startTcpRelay } from "../support/tcp-relay.js";

/** The pool's size (src/store/client.ts). */
const POOL_SIZE = 10;

let database: Awaited<ReturnType<typeof createPgDatabase>>;

beforeAll(async () => {
  database = await createPgDatabase("pulse_store_tx");
  await pgAdmin("CREATE TABLE marks (n int PRIMARY KEY)", database.name);
});

afterAll(async () => {
  await database?.drop();
});

const outcomeOf = (work: Promise<unknown>) =>
  work.then(
    () => "committed",
    (err: unknown) => (isStoreUnavailable(err) ? "unavailable" : `failed otherwise: ${String(err)}`),
  );

const marks = async () => (await pgAdmin<{ n: number }>("SELECT n FROM marks ORDER BY n", database.name)).map((r) => r.n);

describe("metadata store transactions when the store fails", () => {
  it("gives back the sessions of transactions whose BEGIN timed out: the pool does not run dry", async () => {
    const relay = await startTcpRelay({ host: PG.host, port: PG.port });
    const store = await openStore({ databaseUrl: `postgresql://${PG.user}@127.0.0.1:${relay.port}/${database.name}`, queryTimeoutMs: 300 });
    try {
      // Fill the pool with idle sessions, then silence all of them.
      await Promise.all(Array.from({ length: POOL_SIZE }, () => store.db.execute(sql`SELECT pg_sleep(0.05)`)));
      expect(relay.open).toBe(POOL_SIZE);
      relay.freeze();
      const frozen = await Promise.all(Array.from({ length: POOL_SIZE }, () => outcomeOf(store.db.transaction((tx) => tx.execute(sql`SELECT 1`)))));
      expect(frozen).toEqual(Array(POOL_SIZE).fill("unavailable"));
      // Sessions opened now are relayed again. A pool that lost a slot per frozen BEGIN has
      // none left: these would wait for a session until the pool's connection timeout.
      const started = Date.now();
      const after = await Promise.all(
        Array.from({ length: POOL_SIZE }, (_, i) => outcomeOf(store.db.transaction((tx) => tx.execute(sql`INSERT INTO marks VALUES (${100 + i})`)))),
      );
      expect(after).toEqual(Array(POOL_SIZE).fill("committed"));
      expect(Date.now() - started).toBeLessThan(5_000);
      expect((await marks()).filter((n) => n >= 100)).toHaveLength(POOL_SIZE);
    } finally {
      await store.close();
      await relay.close();
    }
  }, 30_000);

  it("never hands on a session that went silent mid-transaction: the next write gets a live one and commits", async () => {
    const relay = await startTcpRelay({ host: PG.host, port: PG.port });
    // One session in the pool (openStore's own check), so the next query gets the same one
    // unless it was discarded.
    const store = await openStore({ databaseUrl: `postgresql://${PG.user}@127.0.0.1:${relay.port}/${database.name}`, queryTimeoutMs: 300 });
    try {
      let frozenAt = 0;
      const failed = await outcomeOf(
        store.db.transaction(async (tx) => {
          await tx.execute(sql`INSERT INTO marks VALUES (1)`);
          relay.freeze();
          frozenAt = Date.now();
          await tx.execute(sql`SELECT 1`);
        }),
      );
      expect(failed).toBe("unavailable");
      // Within one bound (300 ms, plus the 2 s pg waits past it for a silent store), not two: the
      // ROLLBACK that follows must not wait its own turn on the silent session.
      expect(Date.now() - frozenAt).toBeLessThan(3_800);
      // A session kept would be the frozen one, still inside the transaction.
      expect(await outcomeOf(store.db.execute(sql`INSERT INTO marks VALUES (2)`))).toBe("committed");
      const seen = await marks();
      expect(seen).toContain(2);
      expect(seen).not.toContain(1);
    } finally {
      await store.close();
      await relay.close();
    }
  }, 30_000);

  it("lets the store cancel a statement past the bound: a write that answered 503 never commits", async () => {
    const store = await openStore({ databaseUrl: database.url, queryTimeoutMs: 300 });
    try {
      const started = Date.now();
      expect(await outcomeOf(store.db.execute(sql`INSERT INTO marks SELECT 5 FROM pg_sleep(3)`))).toBe("unavailable");
      // Well before the sleep ends, with room for a machine loaded by other test files.
      expect(Date.now() - started).toBeLessThan(2_000);
      // Past the sleep: a statement pg merely stopped waiting for would have committed by now.
      await new Promise((resolve) => setTimeout(resolve, 3_200));
      expect(await marks()).not.toContain(5);
    } finally {
      await store.close();
    }
  });

  it("rolls back a transaction that fails on its own error and keeps its session", async () => {
    const store = await openStore({ databaseUrl: database.url, queryTimeoutMs: 5_000 });
    try {
      const pid = async () => ((await store.db.execute(sql`SELECT pg_backend_pid() AS pid`)) as unknown as { rows: { pid: number }[] }).rows[0]!.pid;
      const before = await pid();
      const failed = await store.db
        .transaction(async (tx) => {
          await tx.execute(sql`INSERT INTO marks VALUES (3)`);
          await tx.execute(sql`INSERT INTO marks VALUES (3)`);
        })
        .then(
          () => "committed",
          (err: unknown) => (err as { cause?: { code?: string } }).cause?.code ?? String(err),
        );
      expect(failed).toBe("23505");
      expect(await marks()).not.toContain(3);
      expect(await pid()).toBe(before);
    } finally {
      await store.close();
    }
  });
});

/** Whether the migrating session is there, asking for the lock that another session holds. */
const migrationWaiting = async () =>
  (await pgAdmin("SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND application_name = 'pulse-migrate'", "test", [database.name])).length === 1;

describe("migrations when the store fails", () => {
  it("fails a migration whose session is lost, without ending the process", async () => {
    const relay = await startTcpRelay({ host: PG.host, port: PG.port });
    const store = await openStore({ databaseUrl: `postgresql://${PG.user}@127.0.0.1:${relay.port}/${database.name}` });
    // Another instance migrating holds the lock (src/store/client.ts's key): this one waits.
    const other = new pg.Client({ connectionString: database.url });
    await other.connect();
    await other.query("SELECT pg_advisory_lock(7311520431)");
    try {
      const migrating = store.migrate().then(
        () => "migrated",
        (err: unknown) => String(err),
      );
      for (let i = 0; i < 100 && !(await migrationWaiting()); i++) await new Promise((resolve) => setTimeout(resolve, 50));
      expect(await migrationWaiting()).toBe(true);
      relay.cut();
      expect(await migrating).toMatch(/DATABASE_URL: PostgreSQL at 127\.0\.0\.1:\d+\/\w+ stopped answering while this instance waited for the migration lock/);
    } finally {
      await other.end();
      await store.close();
      await relay.close();
    }
  });
});

describe("a migration beside running instances", () => {
  /** The project's migrations up to, not including, the last one that changes a table the
   * ones before made (which has to wait for that table's lock), in a folder of their own. */
  function migrationsBeforeLastChange(): string {
    const folder = mkdtempSync(path.join(tmpdir(), "pulse-migrations-"));
    cpSync(projectPath("migrations"), folder, { recursive: true });
    const journalPath = path.join(folder, "meta", "_journal.json");
    const journal = JSON.parse(readFileSync(journalPath, "utf8")) as { entries: { tag: string }[] };
    for (;;) {
      const last = journal.entries.pop()!;
      const file = path.join(folder, `${last.tag}.sql`);
      const changes = /ALTER TABLE|CREATE (UNIQUE )?INDEX/.test(readFileSync(file, "utf8"));
      rmSync(file);
      if (changes) break;
    }
    writeFileSync(journalPath, JSON.stringify(journal));
    return folder;
  }

  it("does not queue the running instances' statements behind its wait for a table, and applies once the table is free", async () => {
    const own = await createPgDatabase("pulse_store_migrate");
    const store = await openStore({ databaseUrl: own.url });
    const earlier = migrationsBeforeLastChange();
    const writer = new pg.Client({ connectionString: own.url });
    const instance = new pg.Client({ connectionString: own.url });
    try {
      // The store as an earlier version left it: the last migration that changes a table is pending.
      await writer.connect();
      await migratePg(drizzlePg(writer), { migrationsFolder: earlier });
      // A long transaction that wrote to every table, as a running instance's can be: any
      // migration's DDL waits for it.
      const tables = await writer.query<{ name: string }>("SELECT quote_ident(tablename) AS name FROM pg_tables WHERE schemaname = 'public'");
      await writer.query("BEGIN");
      await writer.query(`LOCK TABLE ${tables.rows.map((t) => t.name).join(", ")} IN ROW EXCLUSIVE MODE`);
      const migrating = store.migrate();
      migrating.catch(() => {}); // awaited below; not left unhandled if an expectation fails first
      // The table the migration waits for. It waits 5 s at a time with pauses between (a busy
      // machine's polls can miss one wait).
      const waitedFor = async () =>
        (
          await own.query<{ name: string }>(
            "SELECT l.relation::regclass::text AS name FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.datname = current_database() AND a.application_name = 'pulse-migrate' AND NOT l.granted AND l.relation IS NOT NULL",
          )
        )[0]?.name;
      let table: string | undefined;
      for (const deadline = Date.now() + 40_000; !table && Date.now() < deadline; ) {
        table = await waitedFor();
        if (!table) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(table).toBeDefined();
      // Queued behind the migration's request for the table, this waits only until the migration lets go.
      await instance.connect();
      const read = instance.query(`SELECT count(*) FROM ${table}`).then(() => "read");
      const outcome = await Promise.race([read, new Promise((resolve) => setTimeout(() => resolve("still queued"), 15_000))]);
      expect(outcome).toBe("read");
      await writer.query("COMMIT");
      await migrating;
      const applied = await own.query<{ n: number }>("SELECT count(*)::int AS n FROM drizzle.__drizzle_migrations");
      expect(applied[0]!.n).toBe(readdirSync(projectPath("migrations")).filter((f) => f.endsWith(".sql")).length);
    } finally {
      await writer.end().catch(() => undefined);
      await instance.end().catch(() => undefined);
      await store.close();
      await own.drop();
      rmSync(earlier, { recursive: true, force: true });
    }
  }, 90_000);
});


describe("reads a response can do without, when the store is slow", () => {
  const metricsToken = "scrape-token-0123456789abcdef";
  type User = Awaited<ReturnType<Harness["newConnectedUser"]>>;
  /** Runs `test` while the store's alerts table is locked: every read of the alerts waits behind
   * the lock until the store's statement timeout. */
  async function withAlertsLocked(env: Record<string, string>, test: (h: Harness, user: User) => Promise<void>) {
    const h = await createHarness({ env: { METRICS_TOKEN: metricsToken, ...env } });
    const locker = new pg.Client({ connectionString: h.pgDatabase!.url });
    try {
      const user = await h.newConnectedUser();
      await locker.connect();
      await locker.query("BEGIN");
      await locker.query("LOCK TABLE alerts IN ACCESS EXCLUSIVE MODE");
      await test(h, user);
    } finally {
      await locker.end().catch(() => undefined);
      await h.close();
    }
  }

  it("answers /query and /metrics at once, without the open alerts, while the alerts cannot be read", () =>
    withAlertsLocked({}, async (h, user) => {
      const started = Date.now();
      const answered = await h.call("POST", "/query", { token: user.token, json: { sql: "SELECT 1 AS one" } });
      expect(answered.status).toBe(200);
      expect(answered.body).toMatchObject({ data: { rows: [[1]] }, health: [] });
      const scraped = await h.call("GET", "/metrics", { token: metricsToken });
      expect(scraped.status).toBe(200);
      // Bounded at 1 s each, far from STORE_QUERY_TIMEOUT_MS (15 s).
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(h.logs.join("")).toContain("open alerts could not be read for a result's health");
    }), 30_000);

  it("keeps one read of a user's alerts and one count for /metrics waiting, however many requests come meanwhile", () =>
    withAlertsLocked({ STORE_QUERY_TIMEOUT_MS: "30000" }, async (h, user) => {
      const query = () => h.call("POST", "/query", { token: user.token, json: { sql: "SELECT 1 AS one" } });
      for (let i = 0; i < 3; i++) expect((await h.call("GET", "/metrics", { token: metricsToken })).status).toBe(200);
      expect((await query()).status).toBe(200);
      // Past the health cache's age: the first read still waits, and is what the next result gets.
      await new Promise((resolve) => setTimeout(resolve, HEALTH_CACHE_MS + 200));
      expect((await query()).status).toBe(200);
      const waiting = await pgAdmin<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'", PG.database, [h.pgDatabase!.name]);
      expect(waiting[0]!.n).toBe(2);
    }), 60_000);
});

