// The PostgreSQL driver against the real server: exact values, caps and timeouts, read-only
// at the database on its own (no guard in front), connection failures, pool accounting,
// probe and introspection. Each run works in its own database and drops it afterwards.

import { randomBytes } from "node:crypto";
import net from "node:net";

import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { APPLICATION_NAME, BACKSTOP_GRACE_MS, createPostgresDriver } from "../../src/connectors/drivers/postgres.js";
import type { ConnectionTarget, DialectDriver, QueryLimits } from "../../src/connectors/types.js";
import { DomainError } from "../../src/errors.js";

const DB = `pulse_t_${randomBytes(4).toString("hex")}`;
const SERVER = { host: "127.0.0.1", port: 5432, user: "postgres", password: "" };
const LIMITS: QueryLimits = { maxRows: 1000, maxBytes: 1_000_000, timeoutMs: 5_000 };
// Long idle timeout: the shared pool must not shrink while tests count server connections.
const POOL = { maxConnections: 2, idleTimeoutMs: 600_000 };

const target = (over: Partial<ConnectionTarget> = {}): ConnectionTarget => ({
  dialect: "postgresql",
  host: SERVER.host,
  port: SERVER.port,
  database: DB,
  username: SERVER.user,
  password: SERVER.password,
  ssl: false,
  connectTimeoutMs: 3_000,
  ...over,
});

let admin: pg.Client; // superuser session on the test database, outside the driver
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

/** Everything a write could touch in the test database, as one comparable value. The
 * server-wide catalogs are read for this file's names only: other files create and drop
 * databases and roles at the same time. */
async function fingerprint(): Promise<unknown> {
  const { rows } = await admin.query(`
    SELECT (SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t.id), '')) FROM target t) AS data,
           (SELECT last_value::text || is_called::text FROM target_seq) AS seq,
           (SELECT string_agg(c.relname || ':' || c.relkind::text || ':' || c.relnatts, ',' ORDER BY c.relname)
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public') AS relations,
           (SELECT count(*) FROM pg_description) AS comments,
           (SELECT count(*) FROM pg_roles WHERE rolname = 'pulse_intruder') AS roles`);
  return rows[0];
}

/** The server's connections from the driver on the test database, each as its process id and
 * start time (a pid alone could be reused). */
async function pulseBackends(): Promise<Set<string>> {
  const { rows } = await admin.query<{ backend: string }>(
    "SELECT pid::text || '@' || backend_start::text AS backend FROM pg_stat_activity WHERE datname = $1 AND application_name = $2",
    [DB, APPLICATION_NAME],
  );
  return new Set(rows.map((row) => row.backend));
}

/** The driver's connections on the server now that were not among `before`: the ones opened
 * since. Not a count against `before`, which can include a connection the test before was still
 * closing, and then fall below it. */
async function openedSince(before: Set<string>): Promise<number> {
  return [...(await pulseBackends())].filter((backend) => !before.has(backend)).length;
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
  const root = new pg.Client({ ...SERVER, database: "test" });
  await root.connect();
  await root.query(`CREATE DATABASE ${DB}`);
  // As a server before PostgreSQL 12 prints doubles, by default: 15 digits.
  await root.query(`ALTER DATABASE ${DB} SET extra_float_digits = 0`);
  await root.end();
  admin = new pg.Client({ ...SERVER, database: DB, application_name: "pulse-test-admin" });
  await admin.connect();
  await admin.query(`
    CREATE TABLE samples (
      id int PRIMARY KEY, i int, big bigint, num numeric(40, 10), ts timestamp(6), tstz timestamptz, d date,
      b bytea, j jsonb, js json, t text, f float8, flag boolean, arr int[], iv interval, u uuid, mood text);
    INSERT INTO samples VALUES
      (1, -42, 9007199254740993, 12345678901234567890.0123456789, '2024-02-29 23:59:59.123456',
       '2024-02-29 23:59:59.5+02', '2024-02-29', '\\x00ff10', '{"n": 12345678901234567890, "s": "é"}', '[1, 2.50]',
       'héllo 👋 世界', 0.1, true, '{1,2,3}', '1 day 02:03:04', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'ok'),
      (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    CREATE TYPE mood AS ENUM ('ok', 'sad');
    CREATE TABLE target (id int PRIMARY KEY, v text);
    INSERT INTO target SELECT g, 'v' || g FROM generate_series(1, 10) g;
    CREATE SEQUENCE target_seq;
    CREATE PROCEDURE escape_read_only() LANGUAGE plpgsql AS $$
      BEGIN COMMIT; SET default_transaction_read_only = off; INSERT INTO target VALUES (100, 'escaped'); END $$;
    CREATE FUNCTION sneaky_write() RETURNS int LANGUAGE sql SECURITY DEFINER AS
      $$ INSERT INTO target VALUES (101, 'definer') RETURNING id $$;

    CREATE SCHEMA hr;
    CREATE SCHEMA sales;
    CREATE TABLE hr.departments (region text, code int, name text NOT NULL, PRIMARY KEY (region, code));
    COMMENT ON TABLE hr.departments IS 'Departments by region';
    COMMENT ON COLUMN hr.departments.name IS 'Display name';
    INSERT INTO hr.departments SELECT 'r' || (g % 5), g, 'dept ' || g FROM generate_series(1, 500) g;
    ANALYZE hr.departments;
    CREATE TABLE sales.orders (
      id bigserial PRIMARY KEY, region text NOT NULL, dept_code int NOT NULL, amount numeric(12, 2),
      placed_at timestamptz,
      CONSTRAINT orders_department_fk FOREIGN KEY (region, dept_code) REFERENCES hr.departments (region, code));
    CREATE TABLE sales.order_lines (
      order_id bigint REFERENCES sales.orders (id), line int, sku varchar(32), PRIMARY KEY (order_id, line));
    CREATE VIEW sales.big_orders AS SELECT id, amount FROM sales.orders WHERE amount > 1000;
    CREATE TABLE sales.events (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
    CREATE TABLE sales.events_2024 PARTITION OF sales.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
    CREATE TABLE sales.event_notes (
      event_id int, event_at date, note text,
      FOREIGN KEY (event_id, event_at) REFERENCES sales.events_2024 (id, at));
    COMMENT ON VIEW sales.big_orders IS 'Orders over 1000';
  `);
  driver = await createPostgresDriver(target(), POOL);
});

afterAll(async () => {
  await driver?.close();
  await admin?.end();
  const root = new pg.Client({ ...SERVER, database: "test" });
  await root.connect();
  await root.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await root.query(`DROP ROLE IF EXISTS ${DB}_ro`);
  await root.end();
});

describe("query", () => {
  it("returns exact, JSON-safe values for every common type", async () => {
    const result = await driver.query("SELECT * FROM samples ORDER BY id", LIMITS);
    expect(result.rows).toEqual([
      [
        1,
        -42,
        "9007199254740993",
        "12345678901234567890.0123456789",
        "2024-02-29T23:59:59.123456",
        "2024-02-29T21:59:59.5Z",
        "2024-02-29",
        { $binary: "AP8Q" },
        '{"n": 12345678901234567890, "s": "é"}',
        "[1, 2.50]",
        "héllo 👋 世界",
        0.1,
        true,
        "{1,2,3}",
        "1 day 02:03:04",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "ok",
      ],
      [2, ...Array<null>(16).fill(null)],
    ]);
    expect(result.columns.map((c) => `${c.name}:${c.type}`)).toEqual([
      "id:integer", "i:integer", "big:bigint", "num:numeric", "ts:timestamp without time zone",
      "tstz:timestamp with time zone", "d:date", "b:bytea", "j:jsonb", "js:json", "t:text", "f:double precision",
      "flag:boolean", "arr:integer[]", "iv:interval", "u:uuid", "mood:text",
    ]);
    expect(result.truncated).toBe(false);
    expect(result.row_count).toBe(2);
    expect(JSON.parse(JSON.stringify(result.rows))).toEqual(result.rows);
  });

  it("returns every double whole, whatever extra_float_digits the database sets", async () => {
    const result = await driver.query("SELECT 1.0 / 3.0::float8 AS third, 123456789.123456789::float8 AS big, 0.1::float4 AS single", LIMITS);
    expect(result.rows).toEqual([[0.3333333333333333, 123456789.12345679, 0.1]]);
  });

  it("names user-defined result types from the catalog", async () => {
    const result = await driver.query("SELECT 'sad'::mood AS m, NULL::mood[] AS ms", LIMITS);
    expect(result.columns).toEqual([
      { name: "m", type: "mood" },
      { name: "ms", type: "mood[]" },
    ]);
    expect(result.rows).toEqual([["sad", null]]);
  });

  it.each([
    [999, 999, true], // the first batch covers maxRows + 1: one round trip
    [1000, 1000, true], // the default cap: still one round trip
    [1001, 1001, true], // a second batch is needed for the row past the cap
    [2000, 2000, false],
    [5000, 2000, false],
    [0, 0, true],
  ])("caps %i rows out of 2000: keeps %i, truncated %s", async (maxRows, kept, truncated) => {
    const result = await driver.query("SELECT g FROM generate_series(1, 2000) g", { ...LIMITS, maxRows });
    expect(result.row_count).toBe(kept);
    expect(result.rows.length).toBe(kept);
    expect(result.truncated).toBe(truncated);
    expect(result.rows.at(-1)).toEqual(kept ? [kept] : undefined);
  });

  it("stops the server after maxRows + 1 rows instead of fetching the whole result", async () => {
    const startedAt = Date.now();
    const result = await driver.query("SELECT generate_series(1, 200000000) AS g", { ...LIMITS, maxRows: 5000, timeoutMs: 20_000 });
    expect(result.row_count).toBe(5000);
    expect(result.truncated).toBe(true);
    expect(Date.now() - startedAt).toBeLessThan(2_000); // the full result takes tens of seconds
  });

  it("stops adding rows at the byte cap and reports truncated", async () => {
    const maxBytes = 10_000;
    const result = await driver.query("SELECT g, repeat('x', 100) FROM generate_series(1, 1000) g", { ...LIMITS, maxBytes });
    expect(result.truncated).toBe(true);
    expect(result.row_count).toBeGreaterThan(10);
    expect(result.row_count).toBeLessThan(1000);
    expect(JSON.stringify(result.rows).length).toBeLessThanOrEqual(maxBytes);
  });

  it.each([
    ["control characters", "chr(1)"],
    ["CJK text", "chr(19968)"],
  ])("keeps %s, which JSON writes wider than two bytes each, within the byte cap", async (_, char) => {
    const maxBytes = 20_000;
    const result = await driver.query(`SELECT g, repeat(${char}, 100) FROM generate_series(1, 1000) g`, { ...LIMITS, maxBytes });
    expect(result.truncated).toBe(true);
    expect(result.row_count).toBeGreaterThan(10);
    expect(Buffer.byteLength(JSON.stringify(result.rows))).toBeLessThanOrEqual(maxBytes);
  });

  it("refuses a first row larger than the byte cap with result_too_large", async () => {
    const err = await failure(driver.query("SELECT repeat('x', 100000) AS wide", { ...LIMITS, maxBytes: 1_000 }));
    expect(err.code).toBe("result_too_large");
  });

  it("has the database cancel a statement past its timeout, and the connection stays usable", async () => {
    const startedAt = Date.now();
    const err = await failure(driver.query("SELECT pg_sleep(5)", { ...LIMITS, timeoutMs: 200 }));
    expect(err.code).toBe("query_timeout");
    expect(Date.now() - startedAt).toBeLessThan(1_500);
    const after = await driver.query("SELECT current_setting('transaction_read_only') AS ro", LIMITS);
    expect(after.rows).toEqual([["on"]]);
  });

  it("reports a database error as sql_failed with the server's message", async () => {
    const err = await failure(driver.query("SELECT 1 / 0", LIMITS));
    expect(err.code).toBe("sql_failed");
    expect(err.message).toBe("division by zero");
    expect(err.extra).toMatchObject({ sqlstate: "22012" });
    const missing = await failure(driver.query("SELECT nope FROM samples", LIMITS));
    expect(missing.message).toBe('column "nope" does not exist');
    expect(missing.extra).toMatchObject({ sqlstate: "42703", position: 8 });
  });

  it("runs exactly one statement per call (the extended protocol refuses more)", async () => {
    const err = await failure(driver.query("SELECT 1; DELETE FROM target", LIMITS));
    expect(err.code).toBe("sql_failed");
    expect(err.message).toMatch(/cannot insert multiple commands into a prepared statement/);
  });

  it("answers a statement without rows with no columns", async () => {
    const result = await driver.query("SET LOCAL work_mem = '8MB'", LIMITS);
    expect(result).toMatchObject({ columns: [], rows: [], row_count: 0, truncated: false });
  });
});

describe("read-only at the database, without the guard", () => {
  it.each([
    "INSERT INTO target VALUES (11, 'x')",
    "UPDATE target SET v = 'changed'",
    "DELETE FROM target",
    "TRUNCATE target",
    "CREATE TABLE created_by_pulse (x int)",
    "CREATE TEMP TABLE temp_by_pulse (x int)",
    "DROP TABLE target",
    "ALTER TABLE target ADD COLUMN extra int",
    "CREATE INDEX target_v ON target (v)",
    "COMMENT ON TABLE target IS 'changed'",
    "CREATE ROLE pulse_intruder",
    "SELECT nextval('target_seq')",
    "SELECT setval('target_seq', 42)",
    "WITH gone AS (DELETE FROM target RETURNING *) SELECT count(*) FROM gone",
    "SELECT * FROM target FOR UPDATE",
    "SELECT sneaky_write()",
    "CALL escape_read_only()",
    "DO $$ BEGIN INSERT INTO target VALUES (12, 'do'); END $$",
    "SELECT set_config('transaction_read_only', 'off', true)",
  ])("refuses %s and leaves the database unchanged", async (sql) => {
    const before = await fingerprint();
    await expect(driver.query(sql, LIMITS)).rejects.toMatchObject({
      code: "sql_failed",
      message: expect.stringMatching(/in a read-only transaction|invalid transaction termination|read-write mode/),
    });
    expect(await fingerprint()).toEqual(before);
  });

  it.each([
    ["SET default_transaction_read_only = off", "INSERT INTO target VALUES (13, 'x')"],
    ["SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", "DELETE FROM target"],
    ["SELECT set_config('default_transaction_read_only', 'off', false)", "UPDATE target SET v = 'y'"],
    ["RESET ALL", "INSERT INTO target VALUES (14, 'x')"],
    ["COMMIT", "INSERT INTO target VALUES (15, 'x')"],
    ["ROLLBACK", "DROP TABLE target"],
  ])("undoes what %s changed before the next statement (%s)", async (first, write) => {
    const single = await createPostgresDriver(target(), { ...POOL, maxConnections: 1 });
    try {
      const before = await fingerprint();
      await single.query(first, LIMITS);
      await expect(single.query(write, LIMITS)).rejects.toMatchObject({ code: "sql_failed" });
      expect(await fingerprint()).toEqual(before);
      const session = await single.query(
        "SELECT current_setting('default_transaction_read_only'), current_setting('statement_timeout')",
        LIMITS,
      );
      expect(session.rows).toEqual([["on", "5s"]]);
    } finally {
      await single.close();
    }
  });

  it("does not let a statement switch off the timeout of the next one", async () => {
    const single = await createPostgresDriver(target(), { ...POOL, maxConnections: 1 });
    try {
      await single.query("SELECT set_config('statement_timeout', '0', false)", LIMITS);
      await expect(single.query("SELECT pg_sleep(3)", { ...LIMITS, timeoutMs: 200 })).rejects.toMatchObject({
        code: "query_timeout",
      });
    } finally {
      await single.close();
    }
  });

  it("releases session advisory locks a statement took", async () => {
    const single = await createPostgresDriver(target(), { ...POOL, maxConnections: 1 });
    try {
      await single.query("SELECT pg_advisory_lock(4242)", LIMITS);
      // pg_locks is server-wide: other files hold advisory locks of their own databases meanwhile.
      const { rows } = await admin.query(
        "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
      );
      expect(rows[0].n).toBe(0);
    } finally {
      await single.close();
    }
  });

  it("does not stop side effects outside the tables: only the guard and a non-superuser role can", async () => {
    // Documented gap: a superuser may write server files (or run programs) with COPY TO even
    // in a READ ONLY transaction. /dev/null leaves no trace.
    await expect(driver.query("COPY (SELECT 1) TO '/dev/null'", LIMITS)).resolves.toMatchObject({ rows: [] });
  });
});

describe("connections", () => {
  it("fails with connection_failed for an unknown database", async () => {
    const err = await failure(createPostgresDriver(target({ database: `${DB}_missing` }), POOL));
    expect(err.code).toBe("connection_failed");
    expect(err.message).toBe(`database "${DB}_missing" does not exist`);
  });

  it("fails with connection_failed for an unknown role", async () => {
    const err = await failure(createPostgresDriver(target({ username: "pulse_nobody" }), POOL));
    expect(err.code).toBe("connection_failed");
    expect(err.message).toBe('role "pulse_nobody" does not exist');
  });

  it("fails with connection_failed, without the password, when the server rejects it", async () => {
    // This machine's PostgreSQL trusts loopback, so a stand-in server asks for the password
    // and rejects it the way PostgreSQL does.
    const server = await listen((socket) => {
      let step = 0;
      socket.on("data", () => {
        if (step++ === 0) socket.write(Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 3])); // AuthenticationCleartextPassword
        else {
          socket.end(errorResponse("FATAL", "28P01", 'password authentication failed for user "alice"'));
        }
      });
    });
    try {
      const secret = "s3cret-Pa55word";
      const err = await failure(
        createPostgresDriver(target({ port: server.port, username: "alice", password: secret }), POOL),
      );
      expect(err.code).toBe("connection_failed");
      expect(err.message).toBe('password authentication failed for user "alice"');
      expect(JSON.stringify({ message: err.message, extra: err.extra })).not.toContain(secret);
    } finally {
      await server.close();
    }
  });

  it("fails fast with connection_failed when nothing listens on the port", async () => {
    const startedAt = Date.now();
    const err = await failure(createPostgresDriver(target({ port: 1 }), POOL));
    expect(err.code).toBe("connection_failed");
    expect(err.message).toBe("could not connect to 127.0.0.1:1: connection refused");
    expect(Date.now() - startedAt).toBeLessThan(1_000);
  });

  it("gives up within connectTimeoutMs on a server that never answers", async () => {
    const server = await listen(() => {});
    try {
      const startedAt = Date.now();
      const err = await failure(createPostgresDriver(target({ port: server.port, connectTimeoutMs: 500 }), POOL));
      const elapsed = Date.now() - startedAt;
      expect(err.code).toBe("connection_failed");
      expect(err.message).toBe(`could not connect to 127.0.0.1:${server.port} within 500 ms`);
      expect(elapsed).toBeGreaterThanOrEqual(450);
      expect(elapsed).toBeLessThan(1_500);
    } finally {
      await server.close();
    }
  });

  it("gives up waiting for a free connection within the statement's timeout, and hands the late one back", async () => {
    const pool = await createPostgresDriver(target(), { ...POOL, maxConnections: 1 });
    try {
      const holding = pool.query("SELECT pg_sleep(1.5)::text AS slept", LIMITS);
      const startedAt = Date.now();
      const err = await failure(pool.query("SELECT 1 AS one", { ...LIMITS, timeoutMs: 300 }));
      const elapsed = Date.now() - startedAt;
      expect(err).toMatchObject({ code: "query_timeout", message: `No connection to 127.0.0.1:${SERVER.port} came free within 300 ms: statements ahead hold all 1` });
      expect(elapsed).toBeGreaterThanOrEqual(290);
      expect(elapsed).toBeLessThan(1_200);
      expect((await holding).rows).toEqual([[""]]);
      // The connection the given-up wait would have had is back in the pool, for the next one.
      expect((await pool.query("SELECT 2 AS two", LIMITS)).rows).toEqual([[2]]);
      expect(pool.openConnections()).toBe(1);
    } finally {
      await pool.close();
    }
  });

  it("gives up on a server that stops answering mid-query, shortly after the query's timeout", async () => {
    const before = await pulseBackends();
    const proxy = await freezableProxy(SERVER.port);
    const viaProxy = await createPostgresDriver(target({ port: proxy.port }), { ...POOL, maxConnections: 1 });
    try {
      expect((await viaProxy.query("SELECT 1 AS one", LIMITS)).rows).toEqual([[1]]);
      expect(await openedSince(before)).toBe(1);
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
    // The server notices the cut socket a moment later (seconds on a loaded machine).
    expect(await eventually(async () => (await openedSince(before)) === 0, 15_000)).toBe(true);
  });

  it("counts its pooled connections and leaves the server at its baseline after close", async () => {
    const before = await pulseBackends();
    const pool = await createPostgresDriver(target(), { maxConnections: 3, idleTimeoutMs: 10_000 });
    expect(pool.openConnections()).toBe(1); // the eager connection check
    await Promise.all([1, 2, 3].map(() => pool.query("SELECT pg_sleep(0.2)", LIMITS)));
    expect(pool.openConnections()).toBe(3);
    expect(await openedSince(before)).toBe(3);
    await pool.close();
    expect(pool.openConnections()).toBe(0);
    // pg-pool's end() resolves before the server has let them go (seconds on a loaded machine).
    expect(await eventually(async () => (await openedSince(before)) === 0, 10_000)).toBe(true);
  });

  it("closes connections idle for longer than idleTimeoutMs", async () => {
    const before = await pulseBackends();
    const pool = await createPostgresDriver(target(), { maxConnections: 2, idleTimeoutMs: 200 });
    try {
      await pool.query("SELECT 1", LIMITS);
      expect(await eventually(async () => pool.openConnections() === 0 && (await openedSince(before)) === 0, 10_000)).toBe(true);
      expect((await pool.query("SELECT 2 AS n", LIMITS)).rows).toEqual([[2]]); // and reconnects on demand
    } finally {
      await pool.close();
    }
  });

  it("recovers when the server ends one of its connections", async () => {
    const single = await createPostgresDriver(target(), { ...POOL, maxConnections: 1 });
    try {
      const pid = (await single.query("SELECT pg_backend_pid()", LIMITS)).rows[0]![0];
      await admin.query("SELECT pg_terminate_backend($1)", [pid]);
      await eventually(async () => single.openConnections() === 0, 1_000);
      expect((await single.query("SELECT 3 AS n", LIMITS)).rows).toEqual([[3]]);
    } finally {
      await single.close();
    }
  });
});

describe("probe", () => {
  it("reports version, latency and a writable primary for a superuser", async () => {
    const info = await driver.probe();
    expect(info.server_version).toMatch(/^\d+(\.\d+)?/);
    expect(info.latency_ms).toBeGreaterThan(0);
    expect(info.latency_ms).toBeLessThan(1_000);
    expect(info).toMatchObject({ read_only: false, replica: false, replication_lag_seconds: null });
  });

  it("reports read_only for a role that may only SELECT", async () => {
    const role = `${DB}_ro`;
    await admin.query(`CREATE ROLE ${role} LOGIN; GRANT CONNECT ON DATABASE ${DB} TO ${role};
      GRANT USAGE ON SCHEMA public, sales, hr TO ${role}; GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${role}`);
    const readOnly = await createPostgresDriver(target({ username: role }), POOL);
    try {
      expect(await readOnly.probe()).toMatchObject({ read_only: true, replica: false });
    } finally {
      await readOnly.close();
      await admin.query(`REASSIGN OWNED BY ${role} TO postgres; DROP OWNED BY ${role}`);
    }
  });
});

describe("introspect", () => {
  it("says which schema unqualified names resolve to: the first of the role's search_path", async () => {
    expect((await driver.introspect()).default_schema).toBe("public");
    const role = `${DB}_path`;
    await admin.query(`CREATE ROLE ${role} LOGIN; ALTER ROLE ${role} SET search_path = sales, public; GRANT USAGE ON SCHEMA sales, hr TO ${role}; GRANT SELECT ON ALL TABLES IN SCHEMA sales TO ${role}`);
    const pathed = await createPostgresDriver(target({ username: role }), POOL);
    try {
      expect((await pathed.introspect()).default_schema).toBe("sales");
    } finally {
      await pathed.close();
      await admin.query(`DROP OWNED BY ${role}; DROP ROLE ${role}`);
    }
  });

  it("returns only what the login may read: no schema without USAGE, no table without SELECT, only the columns granted", async () => {
    const role = `${DB}_few`;
    await admin.query(`CREATE ROLE ${role} LOGIN; GRANT USAGE ON SCHEMA sales TO ${role}; GRANT SELECT ON sales.orders TO ${role};
      GRANT SELECT (sku) ON sales.order_lines TO ${role}; GRANT SELECT ON hr.departments TO ${role}`);
    const few = await createPostgresDriver(target({ username: role }), POOL);
    try {
      const tables = (await few.introspect()).tables;
      // hr.departments is granted, but hr itself is not: it cannot be read.
      expect(tables.map((t) => `${t.schema}.${t.name}`)).toEqual(["sales.order_lines", "sales.orders"]);
      expect(tables[0]!.columns.map((c) => c.name)).toEqual(["sku"]);
      // No key naming what it may not read: order_lines' key columns, orders' department in hr.
      expect(tables[0]).toMatchObject({ primary_key: [], foreign_keys: [] });
      expect(tables[1]).toMatchObject({ primary_key: ["id"], foreign_keys: [] });
    } finally {
      await few.close();
      await admin.query(`DROP OWNED BY ${role}; DROP ROLE ${role}`);
    }
  });

  it("returns the tables and views of every non-system schema with columns, keys and comments", async () => {
    const snapshot = await driver.introspect();
    expect(snapshot.dialect).toBe("postgresql");
    const names = snapshot.tables.map((t) => `${t.schema}.${t.name}`);
    expect(names).toEqual(
      expect.arrayContaining(["hr.departments", "sales.orders", "sales.order_lines", "sales.big_orders", "public.samples"]),
    );
    expect(names.some((n) => n.startsWith("pg_catalog.") || n.startsWith("information_schema."))).toBe(false);

    const byName = new Map(snapshot.tables.map((t) => [`${t.schema}.${t.name}`, t]));
    expect(byName.get("hr.departments")).toEqual({
      schema: "hr",
      name: "departments",
      kind: "table",
      comment: "Departments by region",
      estimated_rows: 500,
      columns: [
        { name: "region", type: "text", nullable: false, comment: null },
        { name: "code", type: "integer", nullable: false, comment: null },
        { name: "name", type: "text", nullable: false, comment: "Display name" },
      ],
      primary_key: ["region", "code"],
      foreign_keys: [],
    });
    expect(byName.get("sales.orders")).toMatchObject({
      primary_key: ["id"],
      foreign_keys: [{ columns: ["region", "dept_code"], references: { schema: "hr", table: "departments", columns: ["region", "code"] } }],
    });
    expect(byName.get("sales.orders")!.columns.map((c) => c.type)).toEqual([
      "bigint", "text", "integer", "numeric(12,2)", "timestamp with time zone",
    ]);
    expect(byName.get("sales.order_lines")).toMatchObject({
      estimated_rows: null, // never analyzed
      primary_key: ["order_id", "line"],
      foreign_keys: [{ columns: ["order_id"], references: { schema: "sales", table: "orders", columns: ["id"] } }],
    });
    expect(byName.get("sales.order_lines")!.columns[2]).toEqual({ name: "sku", type: "character varying(32)", nullable: true, comment: null });
    expect(byName.get("sales.big_orders")).toMatchObject({
      kind: "view",
      comment: "Orders over 1000",
      estimated_rows: null,
      primary_key: [],
      columns: [
        { name: "id", type: "bigint", nullable: true, comment: null },
        { name: "amount", type: "numeric(12,2)", nullable: true, comment: null },
      ],
    });
    expect(Date.parse(snapshot.introspected_at)).not.toBeNaN();
  });

  it("lists a partitioned table once, without its partitions, and still names keys that point at a partition", async () => {
    const snapshot = await driver.introspect();
    const byName = new Map(snapshot.tables.map((t) => [`${t.schema}.${t.name}`, t]));
    expect(byName.get("sales.events")).toMatchObject({ kind: "table", primary_key: ["id", "at"] });
    expect(byName.has("sales.events_2024")).toBe(false);
    expect(byName.get("sales.event_notes")!.foreign_keys).toEqual([
      { columns: ["event_id", "event_at"], references: { schema: "sales", table: "events_2024", columns: ["id", "at"] } },
    ]);
  });

  it("estimates a partitioned table's rows from its leaf partitions, which autovacuum analyzes (it never analyzes the parent)", async () => {
    await admin.query(`
      CREATE TABLE sales.visits (id int, at date, src text) PARTITION BY RANGE (at);
      CREATE TABLE sales.visits_2024 PARTITION OF sales.visits FOR VALUES FROM ('2024-01-01') TO ('2025-01-01') PARTITION BY LIST (src);
      CREATE TABLE sales.visits_2024_web PARTITION OF sales.visits_2024 FOR VALUES IN ('web');
      CREATE TABLE sales.visits_2024_other PARTITION OF sales.visits_2024 DEFAULT;
      CREATE TABLE sales.visits_2025 PARTITION OF sales.visits FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
      INSERT INTO sales.visits SELECT g, date '2024-01-01' + g % 600, CASE WHEN g % 3 = 0 THEN 'web' END FROM generate_series(1, 3000) g;
      ANALYZE sales.visits_2024_web, sales.visits_2024_other, sales.visits_2025;`);
    try {
      const visits = (await driver.introspect()).tables.find((t) => t.schema === "sales" && t.name === "visits");
      expect(visits?.estimated_rows).toBe(3000);
      // A leaf never analyzed: no estimate, rather than one that leaves its rows out.
      await admin.query("CREATE TABLE sales.visits_2026 PARTITION OF sales.visits FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')");
      expect((await driver.introspect()).tables.find((t) => t.name === "visits")?.estimated_rows).toBeNull();
    } finally {
      await admin.query("DROP TABLE sales.visits");
    }
  });
});

// --- stand-in servers ---------------------------------------------------------------------

async function listen(onConnection: (socket: net.Socket) => void): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    socket.on("close", () => sockets.delete(socket));
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A PostgreSQL ErrorResponse message. */
function errorResponse(severity: string, code: string, message: string): Buffer {
  const fields = Buffer.concat([
    ...[
      ["S", severity],
      ["V", severity],
      ["C", code],
      ["M", message],
    ].map(([k, v]) => Buffer.from(`${k}${v}\0`, "utf8")),
    Buffer.from([0]),
  ]);
  const header = Buffer.alloc(5);
  header.write("E", 0);
  header.writeInt32BE(fields.length + 4, 1);
  return Buffer.concat([header, fields]);
}

/** Forwards to the real server until frozen; then swallows traffic both ways, like a server
 * (or network) that stopped answering. */
async function freezableProxy(serverPort: number): Promise<{ port: number; freeze: () => void; close: () => Promise<void> }> {
  let frozen = false;
  const sockets = new Set<net.Socket>();
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    socket.on("close", () => sockets.delete(socket));
  };
  const server = net.createServer((client) => {
    const upstream = net.connect(serverPort, "127.0.0.1");
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
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
