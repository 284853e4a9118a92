// The SQLite driver against real files: exact values, caps and timeouts, read-only at the
// database on its own (no guard in front), Chinook's schema, and the Spider dev gold queries.

import { createHash } from "node:crypto";
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import Database from "better-sqlite3";
import { afterEach, describe, expect, it, vi } from "vitest";

import { toCell } from "../../src/connectors/cells.js";
import { createSqliteDriver, type SqliteDriverOptions } from "../../src/connectors/drivers/sqlite.js";
import type { Cell, DialectDriver, QueryLimits } from "../../src/connectors/types.js";
import { DomainError } from "../../src/errors.js";

const dataFile = (relative: string) => fileURLToPath(new URL(`../../../shared/data/${relative}`, import.meta.url));
const CHINOOK = dataFile("chinook/Chinook_Sqlite.sqlite");
const LIMITS: QueryLimits = { maxRows: 1000, maxBytes: 1_000_000, timeoutMs: 5000 };
/** Counts to 30 million inside a single sqlite3_step: several seconds of native work. */
const LONG_STEP = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 30000000) SELECT count(*) FROM c";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), "pulse-sqlite-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function copyChinook(dir = tempDir()): string {
  const file = path.join(dir, "chinook.sqlite");
  copyFileSync(CHINOOK, file);
  return file;
}

/** A database built for one test: `setup` runs on a writable connection, then it is closed. */
function buildDatabase(setup: string): string {
  const file = path.join(tempDir(), "fixture.sqlite");
  const db = new Database(file);
  db.exec(setup);
  db.close();
  return file;
}

async function openDriver(filePath: string, opts: SqliteDriverOptions = {}): Promise<DialectDriver> {
  const driver = await createSqliteDriver(
    { dialect: "sqlite", host: "", port: 0, database: path.basename(filePath), username: "", password: "", ssl: false, filePath, connectTimeoutMs: 10_000 },
    opts,
  );
  cleanups.push(() => driver.close());
  return driver;
}

const sha256 = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");

describe("query", () => {
  it("returns exact JSON-safe cells for every storage class", async () => {
    const file = buildDatabase(`
      CREATE TABLE v (i BIGINT, r Real, t TEXT, b BLOB, n INTEGER);
      INSERT INTO v VALUES (9007199254740993, 3.25, 'héllo 世界 🎉', x'0001ff', NULL),
                           (-9223372036854775808, -1e300, '', x'', 42);`);
    const driver = await openDriver(file);
    const result = await driver.query("SELECT i, r, t, b, n, i + 0 AS expr FROM v ORDER BY rowid", LIMITS);
    expect(result.columns).toEqual([
      { name: "i", type: "bigint" },
      { name: "r", type: "real" },
      { name: "t", type: "text" },
      { name: "b", type: "blob" },
      { name: "n", type: "integer" },
      // An expression declares no type: its first value's storage class names it.
      { name: "expr", type: "integer" },
    ]);
    expect(result.rows).toEqual([
      ["9007199254740993", 3.25, "héllo 世界 🎉", { $binary: "AAH/" }, null, "9007199254740993"],
      ["-9223372036854775808", -1e300, "", { $binary: "" }, 42, "-9223372036854775808"],
    ]);
    expect(result).toMatchObject({ row_count: 2, truncated: false });
  });

  it("stops at maxRows and reports truncation without reading an endless result", async () => {
    const driver = await openDriver(copyChinook());
    const endless = await driver.query("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c", { ...LIMITS, maxRows: 5 });
    expect(endless).toMatchObject({ rows: [[1], [2], [3], [4], [5]], row_count: 5, truncated: true });
    const exact = await driver.query("SELECT GenreId FROM Genre ORDER BY GenreId LIMIT 5", { ...LIMITS, maxRows: 5 });
    expect(exact).toMatchObject({ row_count: 5, truncated: false });
  });

  it("stops at the byte cap, and refuses a first row larger than the cap", async () => {
    const driver = await openDriver(copyChinook());
    const wide = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x, printf('%.1000c', 'a') FROM c";
    const capped = await driver.query(wide, { ...LIMITS, maxBytes: 10_000 });
    expect(capped.truncated).toBe(true);
    expect(capped.row_count).toBeGreaterThan(0);
    expect(capped.row_count).toBeLessThan(10);
    await expect(driver.query(wide, { ...LIMITS, maxBytes: 500 })).rejects.toMatchObject({ code: "result_too_large" });
  });

  it("counts column names and declared types, which SQLite lets be any length, against the byte cap", async () => {
    const long = (i: number, what: string) => `"c${i}_${"n".repeat(1_000)}" "${what}${"t".repeat(1_000)}"`;
    const driver = await openDriver(buildDatabase(`CREATE TABLE w (${Array.from({ length: 100 }, (_, i) => long(i, "int")).join(", ")}); INSERT INTO w DEFAULT VALUES;`));
    // 100 columns of about 2,000 characters each: some 200 KB of names and types for one row of NULLs.
    await expect(driver.query("SELECT * FROM w", { ...LIMITS, maxBytes: 100_000 })).rejects.toMatchObject({
      code: "result_too_large",
      message: expect.stringMatching(/column names and types alone are about \d+ bytes/),
    });
    expect((await driver.query("SELECT * FROM w", { ...LIMITS, maxBytes: 1_000_000 })).row_count).toBe(1);
  });

  it("answers several queries sent at once, one at a time", async () => {
    const driver = await openDriver(copyChinook());
    const ids = [1, 2, 3, 4, 5, 6];
    const results = await Promise.all(ids.map((id) => driver.query(`SELECT GenreId FROM Genre WHERE GenreId = ${id}`, LIMITS)));
    expect(results.map((r) => r.rows)).toEqual(ids.map((id) => [[id]]));
  });

  it("reports SQLite's error for a bad statement", async () => {
    const driver = await openDriver(copyChinook());
    await expect(driver.query("SELECT nope FROM Genre", LIMITS)).rejects.toMatchObject({ code: "sql_failed", message: "no such column: nope" });
    await expect(driver.query("SELECT 1; SELECT 2", LIMITS)).rejects.toMatchObject({ code: "sql_failed" });
  });
});

describe("timeout", () => {
  it("rejects at the deadline while the event loop stays free, and the next query works", async () => {
    const driver = await openDriver(copyChinook());
    let ticked = false;
    setTimeout(() => (ticked = true), 50);
    const startedAt = performance.now();
    const error: unknown = await driver.query(LONG_STEP, { ...LIMITS, timeoutMs: 200 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DomainError);
    expect(error).toMatchObject({ code: "query_timeout", extra: { timeout_ms: 200 } });
    expect(performance.now() - startedAt).toBeLessThan(1000);
    expect(ticked).toBe(true);

    expect(await driver.query("SELECT count(*) FROM Track", LIMITS)).toMatchObject({ rows: [[3503]] });
    // The stuck process was killed, not left stepping beside its replacement.
    await vi.waitFor(() => expect(driver.openConnections()).toBe(1), { timeout: 5000, interval: 50 });
    await driver.close();
    expect(driver.openConnections()).toBe(0);
  });

  it("answers a statement waiting behind another within its own timeout, without running it", async () => {
    const driver = await openDriver(copyChinook());
    const ahead = driver.query(LONG_STEP, { ...LIMITS, timeoutMs: 1500 }).catch((e: unknown) => e);
    const startedAt = performance.now();
    const error: unknown = await driver.query("SELECT count(*) FROM Track", { ...LIMITS, timeoutMs: 200 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "query_timeout", extra: { timeout_ms: 200 }, message: expect.stringContaining("waited 200 ms") });
    expect(performance.now() - startedAt).toBeLessThan(1000);
    expect(await ahead).toMatchObject({ code: "query_timeout", extra: { timeout_ms: 1500 } });
    // The one given up was not run later either: the next statement is answered next.
    expect(await driver.query("SELECT count(*) FROM Genre", LIMITS)).toMatchObject({ rows: [[25]] });
  });
});

describe("read-only at the database alone (layer 2)", () => {
  const writes = [
    "INSERT INTO Genre (Name) VALUES ('x')",
    "UPDATE Genre SET Name = 'x'",
    "DELETE FROM Genre",
    "REPLACE INTO Genre VALUES (1, 'x')",
    "CREATE TABLE t (x)",
    "CREATE TEMP TABLE t (x)",
    "CREATE INDEX i ON Genre (Name)",
    "DROP TABLE PlaylistTrack",
    "ALTER TABLE Genre ADD COLUMN x",
    "PRAGMA user_version = 7",
    "PRAGMA journal_mode = WAL",
    "ANALYZE",
    "REINDEX",
    "VACUUM",
    "BEGIN IMMEDIATE",
    "SELECT load_extension('/nonexistent/extension')",
    "PRAGMA query_only = 0; INSERT INTO Genre (Name) VALUES ('x')",
  ];

  it.each(writes)("refuses %s and leaves the file byte-identical", async (sql) => {
    const file = copyChinook();
    const before = sha256(file);
    const driver = await openDriver(file);
    await expect(driver.query(sql, LIMITS)).rejects.toMatchObject({ code: "sql_failed" });
    await driver.close();
    expect(sha256(file)).toBe(before);
    expect(readdirSync(path.dirname(file))).toEqual(["chinook.sqlite"]);
  });

  it("refuses a write after PRAGMA query_only = 0 (the file is opened read-only too)", async () => {
    const file = copyChinook();
    const before = sha256(file);
    const driver = await openDriver(file);
    await driver.query("PRAGMA query_only = 0", LIMITS).catch(() => undefined);
    await expect(driver.query("INSERT INTO Genre (Name) VALUES ('x')", LIMITS)).rejects.toMatchObject({ code: "sql_failed" });
    await expect(driver.query("CREATE TEMP TABLE t (x)", LIMITS)).rejects.toMatchObject({ code: "sql_failed" });
    expect(await driver.query("PRAGMA query_only", LIMITS)).toMatchObject({ rows: [[1]] });
    await driver.close();
    expect(sha256(file)).toBe(before);
  });

  it("refuses VACUUM INTO without creating the target file", async () => {
    const file = copyChinook();
    const before = sha256(file);
    const target = path.join(path.dirname(file), "copy.sqlite");
    const driver = await openDriver(file);
    await expect(driver.query(`VACUUM INTO '${target}'`, LIMITS)).rejects.toMatchObject({ code: "sql_failed" });
    await driver.close();
    expect(sha256(file)).toBe(before);
    expect(readdirSync(path.dirname(file))).toEqual(["chinook.sqlite"]);
  });

  it("refuses ATTACH of another file and stays on its own database", async () => {
    const dir = tempDir();
    const file = copyChinook(dir);
    const other = path.join(dir, "other.sqlite");
    copyFileSync(CHINOOK, other);
    const before = [sha256(file), sha256(other)];
    const driver = await openDriver(file);
    await expect(driver.query(`ATTACH '${other}' AS o`, LIMITS)).rejects.toMatchObject({ code: "sql_failed" });
    await expect(driver.query(`ATTACH '${path.join(dir, "new.sqlite")}' AS n`, LIMITS)).rejects.toMatchObject({ code: "sql_failed" });
    expect(await driver.query("SELECT name FROM pragma_database_list", LIMITS)).toMatchObject({ rows: [["main"]] });
    await driver.close();
    expect([sha256(file), sha256(other)]).toEqual(before);
    expect(readdirSync(dir).sort()).toEqual(["chinook.sqlite", "other.sqlite"]);
  });
});

describe("introspect", () => {
  it("describes Chinook's 11 tables with primary and foreign keys", async () => {
    const { tables, dialect } = await (await openDriver(copyChinook())).introspect();
    expect(dialect).toBe("sqlite");
    expect(tables.map((t) => t.name)).toEqual([
      "Album", "Artist", "Customer", "Employee", "Genre", "Invoice", "InvoiceLine", "MediaType", "Playlist", "PlaylistTrack", "Track",
    ]);
    const table = (name: string) => tables.find((t) => t.name === name)!;
    expect(table("PlaylistTrack").primary_key).toEqual(["PlaylistId", "TrackId"]);
    expect(table("Track")).toMatchObject({ schema: null, kind: "table", estimated_rows: null, primary_key: ["TrackId"] });
    expect(table("Track").columns.find((c) => c.name === "Name")).toEqual({ name: "Name", type: "nvarchar(200)", nullable: false, comment: null });
    expect(table("Track").columns.find((c) => c.name === "Composer")?.nullable).toBe(true);
    const refs = (name: string) => table(name).foreign_keys.map((fk) => `${fk.columns.join()}->${fk.references.table}(${fk.references.columns.join()})`).sort();
    expect(refs("Track")).toEqual(["AlbumId->Album(AlbumId)", "GenreId->Genre(GenreId)", "MediaTypeId->MediaType(MediaTypeId)"]);
    expect(refs("Employee")).toEqual(["ReportsTo->Employee(EmployeeId)"]);
    expect(tables.reduce((n, t) => n + t.foreign_keys.length, 0)).toBe(11);
  });

  it("groups composite keys, resolves implicit references, reads sqlite_stat1, and survives a broken view", async () => {
    const file = buildDatabase(`
      CREATE TABLE parent (b TEXT, a INT, note TEXT NOT NULL, PRIMARY KEY (a, b));
      CREATE TABLE solo (k TEXT PRIMARY KEY);
      CREATE TABLE child (id INTEGER PRIMARY KEY, pa INT, pb TEXT, ps REFERENCES solo, twice INT GENERATED ALWAYS AS (id * 2),
        FOREIGN KEY (pa, pb) REFERENCES parent (a, b));
      CREATE INDEX child_pa ON child (pa);
      CREATE VIEW named AS SELECT id, upper(pb) AS shout FROM child;
      CREATE TABLE gone (x); CREATE VIEW broken AS SELECT x FROM gone; DROP TABLE gone;
      WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 40) INSERT INTO child (id) SELECT x FROM c;
      ANALYZE;`);
    const { tables } = await (await openDriver(file)).introspect();
    expect(tables.map((t) => [t.name, t.kind])).toEqual([
      ["broken", "view"], ["child", "table"], ["named", "view"], ["parent", "table"], ["solo", "table"],
    ]);
    const [broken, child, view, parent] = tables;
    expect(broken!.columns).toEqual([]);
    expect(parent!.primary_key).toEqual(["a", "b"]);
    expect(child!.columns.map((c) => c.name)).toEqual(["id", "pa", "pb", "ps", "twice"]);
    expect(child!.estimated_rows).toBe(40);
    expect(child!.foreign_keys).toEqual(
      expect.arrayContaining([
        { columns: ["pa", "pb"], references: { schema: null, table: "parent", columns: ["a", "b"] } },
        { columns: ["ps"], references: { schema: null, table: "solo", columns: ["k"] } },
      ]),
    );
    expect(view!.columns).toEqual([
      { name: "id", type: "integer", nullable: true, comment: null },
      { name: "shout", type: "", nullable: true, comment: null },
    ]);
  });

  it("lists a full-text index as one table, without the tables it keeps its data in", async () => {
    const file = buildDatabase("CREATE VIRTUAL TABLE docs USING fts5(title, body); CREATE TABLE notes (id INTEGER PRIMARY KEY);");
    const { tables } = await (await openDriver(file)).introspect();
    expect(tables.map((t) => t.name)).toEqual(["docs", "notes"]);
    expect(tables[0]!.columns.map((c) => c.name)).toEqual(["title", "body"]);
  });
});

describe("Chinook queries", () => {
  it("runs window functions, recursive CTEs and JSON functions", async () => {
    const driver = await openDriver(copyChinook());
    const longest = await driver.query(
      `SELECT GenreId, Name FROM (SELECT GenreId, Name, row_number() OVER (PARTITION BY GenreId ORDER BY Milliseconds DESC, TrackId) AS rn FROM Track)
       WHERE rn = 1 ORDER BY GenreId`,
      LIMITS,
    );
    expect(longest.row_count).toBe(25);
    const chain = await driver.query(
      `WITH RECURSIVE chain(id, depth) AS (SELECT EmployeeId, 0 FROM Employee WHERE ReportsTo IS NULL
         UNION ALL SELECT e.EmployeeId, depth + 1 FROM Employee e JOIN chain ON e.ReportsTo = chain.id)
       SELECT count(*), max(depth) FROM chain`,
      LIMITS,
    );
    expect(chain.rows).toEqual([[8, 2]]);
    const json = await driver.query("SELECT json_extract(json_object('ms', Milliseconds), '$.ms') AS ms FROM Track WHERE TrackId = 1", LIMITS);
    expect(json.rows).toEqual([[343719]]);
  });
});

describe("Spider dev gold queries", () => {
  const byDb = new Map<string, string[]>();
  for (const line of readFileSync(dataFile("spider_dev/spider_data/dev_gold.sql"), "utf8").split("\n")) {
    const [sql, dbId] = line.split("\t");
    if (sql && dbId) byDb.set(dbId, [...(byDb.get(dbId) ?? []), sql]);
  }

  it("reads all 643 gold queries of 14 databases", () => {
    expect([...byDb.values()].flat()).toHaveLength(643);
    expect(byDb.size).toBe(14);
  });

  it.each([...byDb.keys()])("returns the same rows as better-sqlite3 directly on %s, without changing the file", async (dbId) => {
    const file = dataFile(`spiderman/database_sqlite/${dbId}/${dbId}.sqlite`);
    const siblings = readdirSync(path.dirname(file));
    const before = sha256(file);
    const direct = new Database(file, { readonly: true, fileMustExist: true });
    cleanups.push(() => direct.close());
    const driver = await openDriver(file);
    for (const sql of byDb.get(dbId)!) {
      let expected: Cell[][] | Error;
      try {
        expected = (direct.prepare(sql).raw(true).safeIntegers(true).all() as unknown[][]).map((row) => row.map(toCell));
      } catch (error) {
        expected = error as Error;
      }
      const actual = await driver.query(sql, { maxRows: 1_000_000, maxBytes: 1e9, timeoutMs: 10_000 }).catch((e: unknown) => e as Error);
      if (expected instanceof Error) {
        expect(actual, sql).toMatchObject({ code: "sql_failed", message: expected.message });
        continue;
      }
      if (actual instanceof Error) throw new Error(`${sql}: ${actual.message}`);
      expect(actual.truncated, sql).toBe(false);
      const ordered = /\border\s+by\b/i.test(sql);
      const canonical = (rows: Cell[][]) => (ordered ? rows : rows.map((r) => JSON.stringify(r)).sort());
      expect(canonical(actual.rows), sql).toEqual(canonical(expected));
    }
    await driver.close();
    expect(sha256(file)).toBe(before);
    expect(readdirSync(path.dirname(file))).toEqual(siblings);
  });
});

describe("connection", () => {
  it("probes version and read-only state", async () => {
    const probe = await (await openDriver(copyChinook())).probe();
    expect(probe).toMatchObject({ read_only: true, replica: false, replication_lag_seconds: null });
    expect(probe.server_version).toMatch(/^3\.\d+\.\d+$/);
    expect(probe.latency_ms).toBeGreaterThanOrEqual(0);
  });

  it("refuses a missing file without naming the server path", async () => {
    const dir = tempDir();
    const error: unknown = await openDriver(path.join(dir, "missing.sqlite")).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "connection_failed" });
    expect((error as Error).message).toContain("missing.sqlite");
    expect((error as Error).message).not.toContain(dir);
  });

  it("refuses a file that is not a SQLite database without naming the server path", async () => {
    const dir = tempDir();
    const file = path.join(dir, "notes.sqlite");
    writeFileSync(file, "not a database, just text ".repeat(100));
    const error: unknown = await openDriver(file).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "connection_failed", message: '"notes.sqlite" is not a SQLite database' });
  });

  it("close() ends the process, is idempotent, and later calls fail", async () => {
    const driver = await openDriver(copyChinook());
    expect(driver.openConnections()).toBe(1);
    await driver.close();
    expect(driver.openConnections()).toBe(0);
    await driver.close();
    await expect(driver.query("SELECT 1", LIMITS)).rejects.toMatchObject({ code: "connection_failed" });
  });

  it("stops the idle process after idleTimeoutMs and reopens on the next query", async () => {
    const driver = await openDriver(copyChinook(), { idleTimeoutMs: 100 });
    await vi.waitFor(() => expect(driver.openConnections()).toBe(0), { timeout: 5000, interval: 20 });
    expect(await driver.query("SELECT count(*) FROM Genre", LIMITS)).toMatchObject({ rows: [[25]] });
  });
});
