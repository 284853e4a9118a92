// The MySQL/MariaDB driver against the real server (MariaDB here): exact values, caps and
// timeouts, read-only at the database on its own (no guard in front), including what it can
// not stop, connection failures, pool accounting, probe and introspection. Each run works in
// its own database and drops it afterwards.

import { randomBytes } from "node:crypto";
import net from "node:net";

import mysql from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

import { BACKSTOP_GRACE_MS, createMysqlDriver } from "../../src/connectors/drivers/mysql.js";
import type { ConnectionTarget, DialectDriver, QueryLimits } from "../../src/connectors/types.js";
import { DomainError } from "../../src/errors.js";
import { startTcpRelay } from "../support/tcp-relay.js";

const DB = `pulse_t_${randomBytes(4).toString("hex")}`;
const RO_USER = `${DB}_ro`;
const RO_PASSWORD = "ro-Pa55word";
const SERVER = { host: "127.0.0.1", port: 3306, user: "root", password: "" };
const LIMITS: QueryLimits = { maxRows: 1000, maxBytes: 1_000_000, timeoutMs: 5_000 };
// Long idle timeout: the shared pool must not shrink while tests count server connections.
const POOL = { maxConnections: 2, idleTimeoutMs: 600_000 };

const target = (over: Partial<ConnectionTarget> = {}): ConnectionTarget => ({
  dialect: "mysql",
  host: SERVER.host,
  port: SERVER.port,
  database: DB,
  username: SERVER.user,
  password: SERVER.password,
  ssl: false,
  connectTimeoutMs: 3_000,
  ...over,
});

/** Root session with no default database, so PROCESSLIST counts only the driver's. */
let admin: mysql.Connection;
let driver: DialectDriver;

async function failure(promise: Promise<unknown>): Promise<DomainError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(DomainError);
    return err as DomainError;
  }
  throw new Error("expected a DomainError");
}

async function adminRows(sql: string, values: unknown[] = []): Promise<mysql.RowDataPacket[]> {
  const [rows] = await admin.query<mysql.RowDataPacket[]>(sql, values);
  return rows;
}

/** Everything a write could touch in the test database, as one comparable value. The
 * server-wide catalogs are read for this file's names only: other files create and drop
 * databases and roles at the same time. */
async function fingerprint(): Promise<unknown> {
  const [row] = await adminRows(
    `SELECT (SELECT CONCAT(COUNT(*), ':', COALESCE(MD5(GROUP_CONCAT(id, '=', v ORDER BY id)), '')) FROM ${DB}.target) AS data,
            (SELECT next_not_cached_value FROM ${DB}.target_seq) AS seq,
            (SELECT GROUP_CONCAT(TABLE_NAME, ':', TABLE_TYPE ORDER BY TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?) AS tables_,
            (SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ?) AS columns_,
            (SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ?) AS indexes_,
            (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?) AS routines,
            (SELECT COUNT(*) FROM mysql.user WHERE User = 'pulse_intruder') AS users,
            (SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN (?, 'pulse_never_there')) AS databases_`,
    [DB, DB, DB, DB, DB],
  );
  return row;
}

/** The ids of the server's connections on the test database (the server never reuses one). */
async function pulseConnectionIds(): Promise<Set<number>> {
  const rows = await adminRows("SELECT ID AS id FROM information_schema.PROCESSLIST WHERE DB = ?", [DB]);
  return new Set(rows.map((row) => Number(row.id)));
}

/** The connections on the test database now that were not among `before`: the ones opened
 * since. Not a count against `before`, which can include a connection the test before was still
 * closing, and then fall below it. */
async function openedSince(before: Set<number>): Promise<number> {
  return [...(await pulseConnectionIds())].filter((id) => !before.has(id)).length;
}

/** The server's connections from these client ports (PROCESSLIST.HOST is `host:port`, the host
 * a name or an address), whatever their database. */
async function connectionsFrom(ports: readonly number[]): Promise<number> {
  const [row] = await adminRows(
    `SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE SUBSTRING_INDEX(HOST, ':', -1) IN (${ports.map(() => "?").join(", ")})`,
    ports.map(String),
  );
  return Number(row!.n);
}

async function eventually(check: () => Promise<boolean>, ms = 3_000): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return check();
}

beforeAll(async () => {
  admin = await mysql.createConnection({ ...SERVER, multipleStatements: true, dateStrings: true });
  await admin.query(`
    CREATE DATABASE ${DB};
    SET time_zone = '+00:00';
    CREATE TABLE ${DB}.samples (
      id INT PRIMARY KEY, i INT, big BIGINT, ubig BIGINT UNSIGNED, num DECIMAL(40, 10), dt DATETIME(6),
      ts TIMESTAMP(6) NULL DEFAULT NULL, d DATE, b BLOB, vb VARBINARY(8), j JSON, t TEXT, f DOUBLE, flag TINYINT(1),
      e ENUM('ok', 'sad'), y YEAR, tm TIME) DEFAULT CHARSET utf8mb4;
    INSERT INTO ${DB}.samples VALUES
      (1, -42, 9007199254740993, 18446744073709551615, 12345678901234567890.0123456789, '2024-02-29 23:59:59.123456',
       '2024-02-29 21:59:59.5', '2024-02-29', X'00FF10', X'0102', '{"n": 12345678901234567890, "s": "é"}',
       'héllo 👋 世界', 0.1, 1, 'ok', 2024, '12:34:56'),
      (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    CREATE TABLE ${DB}.numbers (n INT PRIMARY KEY);
    INSERT INTO ${DB}.numbers VALUES ${Array.from({ length: 2000 }, (_, i) => `(${i + 1})`).join(",")};
    CREATE TABLE ${DB}.target (id INT PRIMARY KEY, v VARCHAR(20));
    INSERT INTO ${DB}.target VALUES (1, 'a'), (2, 'b'), (3, 'c');
    CREATE TABLE ${DB}.escape_log (id INT);
    CREATE SEQUENCE ${DB}.target_seq;
    CREATE PROCEDURE ${DB}.add_row() INSERT INTO target VALUES (100, 'proc');
    CREATE PROCEDURE ${DB}.escape_read_only()
      BEGIN COMMIT; SET SESSION TRANSACTION READ WRITE; INSERT INTO escape_log VALUES (1); END;

    CREATE TABLE ${DB}.departments (
      region VARCHAR(8), code INT, name VARCHAR(40) NOT NULL COMMENT 'Display name', PRIMARY KEY (region, code)
    ) COMMENT 'Departments by region';
    INSERT INTO ${DB}.departments SELECT CONCAT('r', n % 5), n, CONCAT('dept ', n) FROM ${DB}.numbers WHERE n <= 500;
    ANALYZE TABLE ${DB}.departments;
    CREATE TABLE ${DB}.orders (
      id BIGINT AUTO_INCREMENT PRIMARY KEY, region VARCHAR(8) NOT NULL, dept_code INT NOT NULL, amount DECIMAL(12, 2),
      placed_at DATETIME,
      CONSTRAINT orders_department_fk FOREIGN KEY (region, dept_code) REFERENCES ${DB}.departments (region, code));
    CREATE TABLE ${DB}.order_lines (
      order_id BIGINT, line INT, sku VARCHAR(32), PRIMARY KEY (order_id, line),
      FOREIGN KEY (order_id) REFERENCES ${DB}.orders (id));
    CREATE VIEW ${DB}.big_orders AS SELECT id, amount FROM ${DB}.orders WHERE amount > 1000;

    CREATE USER '${RO_USER}'@'%' IDENTIFIED BY '${RO_PASSWORD}';
    GRANT SELECT ON ${DB}.* TO '${RO_USER}'@'%';
  `);
  driver = await createMysqlDriver(target(), POOL);
});

afterAll(async () => {
  await driver?.close();
  await admin?.query(`DROP DATABASE IF EXISTS ${DB}; DROP USER IF EXISTS '${RO_USER}'@'%'`);
  await admin?.end();
});

describe("query", () => {
  it("returns exact, JSON-safe values for every common type", async () => {
    const result = await driver.query("SELECT * FROM samples ORDER BY id", LIMITS);
    expect(result.rows).toEqual([
      [
        1,
        -42,
        "9007199254740993",
        "18446744073709551615",
        "12345678901234567890.0123456789",
        "2024-02-29T23:59:59.123456",
        "2024-02-29T21:59:59.500000Z",
        "2024-02-29",
        { $binary: "AP8Q" },
        { $binary: "AQI=" },
        '{"n": 12345678901234567890, "s": "é"}',
        "héllo 👋 世界",
        0.1,
        1,
        "ok",
        2024,
        "12:34:56",
      ],
      [2, ...Array<null>(16).fill(null)],
    ]);
    expect(result.columns.map((c) => `${c.name}:${c.type}`)).toEqual([
      "id:int", "i:int", "big:bigint", "ubig:bigint unsigned", "num:decimal", "dt:datetime", "ts:timestamp", "d:date",
      "b:blob", "vb:varbinary", "j:json", "t:text", "f:double", "flag:tinyint", "e:enum", "y:year", "tm:time",
    ]);
    expect(result).toMatchObject({ row_count: 2, truncated: false });
    expect(JSON.parse(JSON.stringify(result.rows))).toEqual(result.rows);
  });

  it.each([
    [999, 999, true],
    [1000, 1000, true],
    [2000, 2000, false],
    [5000, 2000, false],
    [0, 0, true],
  ])("caps %i rows out of 2000: keeps %i, truncated %s", async (maxRows, kept, truncated) => {
    const result = await driver.query("SELECT n FROM numbers ORDER BY n", { ...LIMITS, maxRows });
    expect(result.row_count).toBe(kept);
    expect(result.truncated).toBe(truncated);
    expect(result.rows.at(-1)).toEqual(kept ? [kept] : undefined);
  });

  it("has the server stop after maxRows + 1 rows (sql_select_limit) instead of sending 4 million", async () => {
    const startedAt = Date.now();
    const result = await driver.query("SELECT a.n, b.n FROM numbers a, numbers b", { ...LIMITS, maxRows: 5000 });
    expect(result).toMatchObject({ row_count: 5000, truncated: true });
    expect(Date.now() - startedAt).toBeLessThan(1_000);
  });

  it("stops the server on a result whose own LIMIT overrides the select limit, and stays usable", async () => {
    const startedAt = Date.now();
    const result = await driver.query("SELECT a.n, b.n FROM numbers a, numbers b LIMIT 4000000", { ...LIMITS, maxRows: 10 });
    expect(result).toMatchObject({ row_count: 10, truncated: true });
    expect(Date.now() - startedAt).toBeLessThan(2_000);
    const [running] = await adminRows(
      "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE INFO LIKE '%LIMIT 4000000' AND ID <> CONNECTION_ID()",
    );
    expect(Number(running!.n)).toBe(0); // the server stopped (KILL QUERY), not merely disconnected
    expect((await driver.query("SELECT 1 AS one", LIMITS)).rows).toEqual([[1]]);
  });

  it("answers, and drops the connection, when the KILL that stops an overrun is swallowed by the network", async () => {
    const relay = await startTcpRelay({ host: SERVER.host, port: SERVER.port });
    relay.freezeOn("KILL QUERY");
    const through = await createMysqlDriver(target({ port: relay.port }), { ...POOL, maxConnections: 1 });
    try {
      const result = await through.query("SELECT a.n, b.n FROM numbers a, numbers b LIMIT 4000000", { ...LIMITS, maxRows: 10 });
      expect(result).toMatchObject({ row_count: 10, truncated: true });
      // The one pooled connection was dropped, not kept with a KILL on its way: the next
      // statement gets a fresh one and is not killed.
      relay.freezeOn(null);
      expect((await through.query("SELECT 1 AS one", LIMITS)).rows).toEqual([[1]]);
    } finally {
      await through.close();
      await relay.close();
    }
  }, 30_000);

  it("answers, and drops the connection, when the reset that ends a statement is swallowed by the network", async () => {
    const relay = await startTcpRelay({ host: SERVER.host, port: SERVER.port });
    const through = await createMysqlDriver(target({ port: relay.port }), { ...POOL, maxConnections: 1 });
    try {
      // COM_RESET_CONNECTION: a packet of one byte (0x1f), the first of its command.
      relay.freezeOn("\x01\x00\x00\x00\x1f");
      expect((await through.query("SELECT 1 AS one", { ...LIMITS, timeoutMs: 300 })).rows).toEqual([[1]]);
      relay.freezeOn(null);
      // The one pooled connection was dropped, not kept waiting for the reset's answer.
      expect((await through.query("SELECT 2 AS two", LIMITS)).rows).toEqual([[2]]);
      expect(relay.accepted).toBe(2);
    } finally {
      await through.close();
      await relay.close();
    }
  }, 30_000);

  it("works again once a server that swallowed every connect answers, and closes", async () => {
    const relay = await startTcpRelay({ host: SERVER.host, port: SERVER.port });
    const through = await createMysqlDriver(target({ port: relay.port, connectTimeoutMs: 600 }), { ...POOL, maxConnections: 2 });
    try {
      relay.cut();
      relay.blackhole(true);
      for (let round = 0; round < 3; round++) {
        const outcomes = await Promise.all([1, 2, 3].map(() => failure(through.query("SELECT 1 AS one", { ...LIMITS, timeoutMs: 300 }))));
        // Lost (the pooled one the cut closed), failed to connect, or no connection within 300 ms.
        for (const err of outcomes) expect(["connection_lost", "connection_failed", "query_timeout"]).toContain(err.code);
      }
      relay.blackhole(false);
      // The connects under way give up within their timeout and leave the pool room.
      await vi.waitFor(async () => expect((await through.query("SELECT 1 AS one", { ...LIMITS, timeoutMs: 300 })).rows).toEqual([[1]]), { timeout: 3_000, interval: 100 });
      // Both of the pool's places serve again: none is held by a connect that never answered.
      const both = await Promise.all([1, 2].map(() => through.query("SELECT SLEEP(0.2) AS slept", { ...LIMITS, timeoutMs: 2_000 })));
      expect(both.map((r) => r.rows)).toEqual([[[0]], [[0]]]);
    } finally {
      // Closing answers though connections whose connect failed answer end() with that error.
      await through.close();
      await relay.close();
    }
  });

  it("bounds the whole statement, the round trips around it included, by its timeout and the grace, on a slow link", async () => {
    const relay = await startTcpRelay({ host: SERVER.host, port: SERVER.port });
    const through = await createMysqlDriver(target({ port: relay.port }), { ...POOL, maxConnections: 1 });
    try {
      // Each of the four round trips (guards, START TRANSACTION, the statement, the reset) takes
      // 1.5 s, under its own bound: 6 s in all when each had one of its own.
      relay.delay(1_500);
      const timeoutMs = 2_000;
      const started = Date.now();
      const outcome = await through.query("SELECT 1 AS one", { ...LIMITS, timeoutMs }).then(
        () => "answered",
        (err: unknown) => (err instanceof DomainError ? err.code : String(err)),
      );
      expect(Date.now() - started).toBeLessThan(timeoutMs + BACKSTOP_GRACE_MS + 750);
      expect(outcome).toBe("query_timeout");
      relay.delay(0);
      expect((await through.query("SELECT 1 AS one", LIMITS)).rows).toEqual([[1]]);
    } finally {
      await through.close();
      await relay.close();
    }
  }, 30_000);

  it("reads columns named like a JavaScript object's own properties, whole", async () => {
    const result = await driver.query("SELECT 1 AS `__proto__`, 2 AS `__defineGetter__`, 3 AS `constructor`, 4 AS `__proto__`", LIMITS);
    expect(result.columns.map((c) => c.name)).toEqual(["__proto__", "__defineGetter__", "constructor", "__proto__"]);
    expect(result.rows).toEqual([[1, 2, 3, 4]]);
  });

  it("returns a geometry's bytes whole, its SRID and kind included", async () => {
    const shapes = ["ST_GeomFromText('LINESTRING(1 1,2 2)')", "ST_GeomFromText('MULTIPOINT(1 1,2 2)')", "ST_GeomFromText('POINT(1 2)', 4326)", "ST_GeomFromText('POINT(1 2)')"];
    const result = await driver.query(`SELECT ${shapes.join(", ")}`, LIMITS);
    const wkb = await driver.query(`SELECT ${shapes.map((g) => `ST_SRID(${g}), ST_AsBinary(${g})`).join(", ")}`, LIMITS);
    const expected = shapes.map((_, i) => {
      const srid = Buffer.alloc(4);
      srid.writeUInt32LE(wkb.rows[0]![2 * i] as number);
      return { $binary: Buffer.concat([srid, Buffer.from((wkb.rows[0]![2 * i + 1] as { $binary: string }).$binary, "base64")]).toString("base64") };
    });
    expect(result.rows).toEqual([expected]);
    expect(new Set(expected.map((e) => e.$binary)).size).toBe(4);
  });

  it("stops adding rows at the byte cap and reports truncated", async () => {
    const maxBytes = 10_000;
    const result = await driver.query("SELECT n, REPEAT('x', 100) FROM numbers ORDER BY n", { ...LIMITS, maxBytes });
    expect(result.truncated).toBe(true);
    expect(result.row_count).toBeGreaterThan(10);
    expect(result.row_count).toBeLessThan(2000);
    expect(JSON.stringify(result.rows).length).toBeLessThanOrEqual(maxBytes);
  });

  it("refuses a first row larger than the byte cap with result_too_large", async () => {
    const err = await failure(driver.query("SELECT REPEAT('x', 100000) AS wide", { ...LIMITS, maxBytes: 1_000 }));
    expect(err.code).toBe("result_too_large");
  });

  it("has the database stop a statement past its timeout, and the connection stays usable", async () => {
    const startedAt = Date.now();
    const err = await failure(driver.query("SELECT SLEEP(5)", { ...LIMITS, timeoutMs: 200 }));
    expect(err.code).toBe("query_timeout");
    expect(Date.now() - startedAt).toBeLessThan(1_500);
    const after = await driver.query("SELECT @@tx_read_only AS ro", LIMITS);
    expect(after.rows).toEqual([[1]]);
  });

  it("reports a database error as sql_failed with the server's message", async () => {
    const err = await failure(driver.query("SELECT nope FROM samples", LIMITS));
    expect(err.code).toBe("sql_failed");
    expect(err.message).toBe("Unknown column 'nope' in 'SELECT'");
    expect(err.extra).toMatchObject({ errno: 1054, sqlstate: "42S22" });
  });

  it("runs exactly one statement per call (multiple statements are a syntax error)", async () => {
    const before = await fingerprint();
    const err = await failure(driver.query("SELECT 1; DELETE FROM target", LIMITS));
    expect(err).toMatchObject({ code: "sql_failed", extra: { errno: 1064 } });
    expect(await fingerprint()).toEqual(before);
  });
});

describe("read-only at the database, without the guard", () => {
  it.each([
    "INSERT INTO target VALUES (10, 'x')",
    "UPDATE target SET v = 'changed'",
    "DELETE FROM target",
    "REPLACE INTO target VALUES (1, 'replaced')",
    "TRUNCATE TABLE target",
    "CREATE TABLE created_by_pulse (x INT)",
    "CREATE TEMPORARY TABLE temp_by_pulse (x INT)",
    "CREATE TABLE copied AS SELECT * FROM target",
    "DROP TABLE target",
    "ALTER TABLE target ADD COLUMN extra INT",
    "RENAME TABLE target TO renamed",
    "CREATE INDEX target_v ON target (v)",
    "CREATE VIEW pulse_view AS SELECT 1",
    "CREATE PROCEDURE pulse_proc() SELECT 1",
    "DROP DATABASE IF EXISTS pulse_never_there",
    "CREATE USER 'pulse_intruder'@'%'",
    "SELECT NEXTVAL(target_seq)",
    "LOCK TABLES target WRITE",
    "CALL add_row()",
    "LOAD DATA INFILE '/etc/hostname' INTO TABLE target",
  ])("refuses %s and leaves the database unchanged", async (sql) => {
    const before = await fingerprint();
    await expect(driver.query(sql, LIMITS)).rejects.toMatchObject({
      code: "sql_failed",
      message: "Cannot execute statement in a READ ONLY transaction",
    });
    expect(await fingerprint()).toEqual(before);
  });

  it.each([
    ["SET SESSION tx_read_only = 0", "INSERT INTO target VALUES (11, 'x')"],
    ["SET SESSION TRANSACTION READ WRITE", "DELETE FROM target"],
    ["SET autocommit = 0", "UPDATE target SET v = 'y'"],
    ["COMMIT", "INSERT INTO target VALUES (12, 'x')"],
    ["ROLLBACK", "DROP TABLE target"],
  ])("undoes what %s changed before the next statement (%s)", async (first, write) => {
    const single = await createMysqlDriver(target(), { ...POOL, maxConnections: 1 });
    try {
      const before = await fingerprint();
      await single.query(first, LIMITS);
      await expect(single.query(write, LIMITS)).rejects.toMatchObject({ code: "sql_failed" });
      expect(await fingerprint()).toEqual(before);
    } finally {
      await single.close();
    }
  });

  it("does not let a statement switch off the timeout or the row limit of the next one", async () => {
    const single = await createMysqlDriver(target(), { ...POOL, maxConnections: 1 });
    try {
      await single.query("SET SESSION max_statement_time = 0, sql_select_limit = 3", LIMITS);
      await expect(single.query("SELECT SLEEP(3)", { ...LIMITS, timeoutMs: 200 })).rejects.toMatchObject({ code: "query_timeout" });
      const rows = await single.query("SELECT n FROM numbers", { ...LIMITS, maxRows: 100 });
      expect(rows).toMatchObject({ row_count: 100, truncated: true });
    } finally {
      await single.close();
    }
  });

  it("drops GET_LOCK locks and user variables a statement left behind before the connection is pooled again", async () => {
    const single = await createMysqlDriver(target(), { ...POOL, maxConnections: 1 });
    try {
      await single.query(`SELECT GET_LOCK('${DB}', 0), @left_behind := 'x'`, LIMITS);
      expect((await adminRows(`SELECT IS_USED_LOCK('${DB}') IS NOT NULL AS held`))[0]!.held).toBe(0);
      expect((await single.query("SELECT @left_behind", LIMITS)).rows).toEqual([[null]]);
    } finally {
      await single.close();
    }
  });

  it("lets through what only the guard (and a least-privilege account) can stop", async () => {
    // Documented gaps of layer 2 on MariaDB. A routine may COMMIT our transaction and turn
    // read-only off for itself; ANALYZE TABLE rewrites statistics. Also allowed (not run
    // here): SET GLOBAL, SELECT ... INTO OUTFILE, FLUSH, KILL.
    await driver.query("CALL escape_read_only()", LIMITS);
    expect((await adminRows(`SELECT COUNT(*) AS n FROM ${DB}.escape_log`))[0]!.n).toBe(1);
    await expect(driver.query("ANALYZE TABLE target", LIMITS)).resolves.toMatchObject({ row_count: 1 });
  });
});

describe("connections", () => {
  it("fails with connection_failed and the server's message for a wrong password, never echoing it", async () => {
    const secret = "wr0ng-Pa55word";
    const err = await failure(createMysqlDriver(target({ username: RO_USER, password: secret }), POOL));
    expect(err.code).toBe("connection_failed");
    expect(err.message).toMatch(new RegExp(`^Access denied for user '${RO_USER}'@'[^']+' \\(using password: YES\\)$`));
    expect(JSON.stringify({ message: err.message, extra: err.extra })).not.toContain(secret);
  });

  it("fails with connection_failed for an unknown database", async () => {
    const err = await failure(createMysqlDriver(target({ database: `${DB}_missing` }), POOL));
    expect(err).toMatchObject({ code: "connection_failed", message: `Unknown database '${DB}_missing'` });
  });

  it("fails fast with connection_failed when nothing listens on the port", async () => {
    const startedAt = Date.now();
    const err = await failure(createMysqlDriver(target({ port: 1 }), POOL));
    expect(err).toMatchObject({ code: "connection_failed", message: "could not connect to 127.0.0.1:1: connection refused" });
    expect(Date.now() - startedAt).toBeLessThan(1_000);
  });

  it("gives up within connectTimeoutMs on a server that never answers", async () => {
    const server = await listen();
    try {
      const startedAt = Date.now();
      const err = await failure(createMysqlDriver(target({ port: server.port, connectTimeoutMs: 500 }), POOL));
      const elapsed = Date.now() - startedAt;
      expect(err).toMatchObject({ code: "connection_failed", message: `could not connect to 127.0.0.1:${server.port} within 500 ms` });
      expect(elapsed).toBeGreaterThanOrEqual(450);
      expect(elapsed).toBeLessThan(1_500);
    } finally {
      await server.close();
    }
  });

  it("gives up waiting for a free connection within the statement's timeout, and hands the late one back", async () => {
    const pool = await createMysqlDriver(target(), { ...POOL, maxConnections: 1 });
    try {
      const holding = pool.query("SELECT SLEEP(1.5) AS slept", LIMITS);
      const startedAt = Date.now();
      const err = await failure(pool.query("SELECT 1 AS one", { ...LIMITS, timeoutMs: 300 }));
      const elapsed = Date.now() - startedAt;
      expect(err).toMatchObject({ code: "query_timeout", message: `No connection to 127.0.0.1:${SERVER.port} came free within 300 ms: statements ahead hold all 1` });
      expect(elapsed).toBeGreaterThanOrEqual(290);
      expect(elapsed).toBeLessThan(1_200);
      expect((await holding).rows).toEqual([[0]]);
      // The connection the given-up wait would have had is back in the pool, for the next one.
      expect((await pool.query("SELECT 2 AS two", LIMITS)).rows).toEqual([[2]]);
      expect(pool.openConnections()).toBe(1);
    } finally {
      await pool.close();
    }
  });

  it("gives up on a server that stops answering mid-query, shortly after the query's timeout", async () => {
    const proxy = await freezableProxy(SERVER.port);
    const viaProxy = await createMysqlDriver(target({ port: proxy.port }), { ...POOL, maxConnections: 1 });
    try {
      expect((await viaProxy.query("SELECT 1 AS one", LIMITS)).rows).toEqual([[1]]);
      proxy.freeze();
      const startedAt = Date.now();
      const err = await failure(viaProxy.query("SELECT 2 AS two", { ...LIMITS, timeoutMs: 200 }));
      const elapsed = Date.now() - startedAt;
      expect(err).toMatchObject({ code: "query_timeout", message: "The database did not answer within 200 ms" });
      expect(elapsed).toBeGreaterThanOrEqual(200 + BACKSTOP_GRACE_MS - 50);
      expect(elapsed).toBeLessThan(200 + BACKSTOP_GRACE_MS + 1_000);
      expect(viaProxy.openConnections()).toBe(0); // the stuck connection is dropped, not pooled
    } finally {
      await viaProxy.close();
      await proxy.close();
    }
    // The server notices the cut socket a moment later (seconds on a loaded machine). Counted by
    // the proxy's own connections: a count of the database's could meet `before` too early or
    // never, as connections of the tests before this one end meanwhile.
    const ports = proxy.upstreamPorts();
    expect(ports.length).toBeGreaterThan(0);
    expect(await eventually(async () => (await connectionsFrom(ports)) === 0, 15_000)).toBe(true);
  });

  it("counts its pooled connections and leaves the server at its baseline after close", async () => {
    const before = await pulseConnectionIds();
    const pool = await createMysqlDriver(target(), { maxConnections: 3, idleTimeoutMs: 600_000 });
    expect(pool.openConnections()).toBe(1); // the eager connection check
    await Promise.all([1, 2, 3].map(() => pool.query("SELECT SLEEP(0.2)", LIMITS)));
    expect(pool.openConnections()).toBe(3);
    expect(await openedSince(before)).toBe(3);
    await pool.close();
    expect(pool.openConnections()).toBe(0);
    // The server lets them go a moment after the pool has (seconds on a loaded machine).
    expect(await eventually(async () => (await openedSince(before)) === 0, 10_000)).toBe(true);
  });

  it("closes connections idle for longer than idleTimeoutMs", async () => {
    const before = await pulseConnectionIds();
    const pool = await createMysqlDriver(target(), { maxConnections: 2, idleTimeoutMs: 200 });
    try {
      await pool.query("SELECT 1", LIMITS);
      // mysql2 checks for idle connections once a second.
      expect(await eventually(async () => pool.openConnections() === 0 && (await openedSince(before)) === 0, 10_000)).toBe(true);
      expect((await pool.query("SELECT 2 AS n", LIMITS)).rows).toEqual([[2]]);
    } finally {
      await pool.close();
    }
  });

  it("recovers when the server ends one of its connections", async () => {
    const single = await createMysqlDriver(target(), { ...POOL, maxConnections: 1 });
    try {
      const id = (await single.query("SELECT CONNECTION_ID()", LIMITS)).rows[0]![0];
      await admin.query(`KILL ${Number(id)}`);
      await eventually(async () => single.openConnections() === 0, 1_000);
      expect((await single.query("SELECT 3 AS n", LIMITS)).rows).toEqual([[3]]);
    } finally {
      await single.close();
    }
  });
});

describe("probe", () => {
  it("reports version, latency and a writable primary for root", async () => {
    const info = await driver.probe();
    expect(info.server_version).toMatch(/^\d+\.\d+\.\d+/);
    expect(info.latency_ms).toBeGreaterThan(0);
    expect(info.latency_ms).toBeLessThan(1_000);
    expect(info).toMatchObject({ read_only: false, replica: false, replication_lag_seconds: null });
  });

  it("reports read_only for an account that may only SELECT, and no replica without the privilege to tell", async () => {
    const readOnly = await createMysqlDriver(target({ username: RO_USER, password: RO_PASSWORD }), POOL);
    try {
      expect(await readOnly.probe()).toMatchObject({ read_only: true, replica: false, replication_lag_seconds: null });
    } finally {
      await readOnly.close();
    }
  });
});

describe("introspect", () => {
  it("returns the database's tables and views with columns, keys, comments and estimated rows", async () => {
    const snapshot = await driver.introspect();
    expect(snapshot.dialect).toBe("mysql");
    const byName = new Map(snapshot.tables.map((t) => [t.name, t]));
    expect([...byName.keys()]).toEqual(
      expect.arrayContaining(["departments", "orders", "order_lines", "big_orders", "samples", "numbers"]),
    );
    expect(byName.has("target_seq")).toBe(false);
    expect(byName.get("departments")).toEqual({
      schema: DB,
      name: "departments",
      kind: "table",
      comment: "Departments by region",
      estimated_rows: expect.any(Number),
      columns: [
        { name: "region", type: "varchar(8)", nullable: false, comment: null },
        { name: "code", type: "int(11)", nullable: false, comment: null },
        { name: "name", type: "varchar(40)", nullable: false, comment: "Display name" },
      ],
      primary_key: ["region", "code"],
      foreign_keys: [],
    });
    // InnoDB's row count is an estimate.
    expect(byName.get("departments")!.estimated_rows).toBeGreaterThan(250);
    expect(byName.get("departments")!.estimated_rows).toBeLessThan(1000);
    expect(byName.get("orders")).toMatchObject({
      primary_key: ["id"],
      foreign_keys: [{ columns: ["region", "dept_code"], references: { schema: DB, table: "departments", columns: ["region", "code"] } }],
    });
    expect(byName.get("orders")!.columns.map((c) => c.type)).toEqual(["bigint(20)", "varchar(8)", "int(11)", "decimal(12,2)", "datetime"]);
    expect(byName.get("order_lines")).toMatchObject({
      primary_key: ["order_id", "line"],
      foreign_keys: [{ columns: ["order_id"], references: { schema: DB, table: "orders", columns: ["id"] } }],
    });
    expect(byName.get("big_orders")).toMatchObject({ kind: "view", comment: null, estimated_rows: null, primary_key: [] });
    expect(byName.get("big_orders")!.columns.map((c) => c.name)).toEqual(["id", "amount"]);
  });

  it("keeps apart tables, and databases, whose names differ only in case (lower_case_table_names=0)", async () => {
    const twin = DB.toUpperCase();
    await adminRows(`CREATE TABLE \`${DB}\`.\`Cased\` (id int PRIMARY KEY, \`Upper\` int)`);
    await adminRows(`CREATE TABLE \`${DB}\`.cased (id int, lower_only int)`);
    await adminRows(`CREATE DATABASE \`${twin}\``);
    try {
      await adminRows(`CREATE TABLE \`${twin}\`.twin_only (id int)`);
      const byName = new Map((await driver.introspect()).tables.map((t) => [t.name, t]));
      expect(byName.get("Cased")).toMatchObject({ columns: [{ name: "id" }, { name: "Upper" }], primary_key: ["id"] });
      expect(byName.get("cased")).toMatchObject({ columns: [{ name: "id" }, { name: "lower_only" }], primary_key: [] });
      expect(byName.has("twin_only")).toBe(false);
    } finally {
      await adminRows(`DROP DATABASE \`${twin}\``);
      await adminRows(`DROP TABLE \`${DB}\`.\`Cased\`, \`${DB}\`.cased`);
    }
  });

  it("keeps to the columns it lists in a system-versioned table's primary key (MariaDB adds its invisible row_end)", async () => {
    await adminRows(`CREATE TABLE \`${DB}\`.versioned (id int PRIMARY KEY, v int) WITH SYSTEM VERSIONING`);
    try {
      const byName = new Map((await driver.introspect()).tables.map((t) => [t.name, t]));
      expect(byName.get("versioned")).toMatchObject({ columns: [{ name: "id" }, { name: "v" }], primary_key: ["id"] });
    } finally {
      await adminRows(`DROP TABLE \`${DB}\`.versioned`);
    }
  });
});

/** A TCP server that accepts connections and never says a word. */
async function listen(): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Forwards to the real server until frozen; then swallows traffic both ways, like a server
 * (or network) that stopped answering. */
async function freezableProxy(serverPort: number): Promise<{ port: number; freeze: () => void; close: () => Promise<void>; upstreamPorts: () => number[] }> {
  let frozen = false;
  const sockets = new Set<net.Socket>();
  /** The local port of each connection the proxy made to the server (PROCESSLIST.HOST's). */
  const upstreamPorts: number[] = [];
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    socket.on("close", () => sockets.delete(socket));
  };
  const server = net.createServer((client) => {
    const upstream = net.connect(serverPort, "127.0.0.1", () => upstreamPorts.push(upstream.localPort!));
    track(client);
    track(upstream);
    client.on("data", (chunk) => frozen || upstream.write(chunk));
    upstream.on("data", (chunk) => frozen || client.write(chunk));
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    freeze: () => {
      frozen = true;
    },
    upstreamPorts: () => [...upstreamPorts],
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
