// Threat: a database object the guard cannot see into (a view, a function) leaves session state
// on a pooled connection that ROLLBACK does not undo: a session advisory lock or a prepared
// statement (PostgreSQL), a GET_LOCK lock or a user variable (MariaDB). The lock would stay held
// by an idle connection (others' sessions wait on it), and the variable would be read by the
// next statement on that connection, another user's. With one statement at a time (as here)
// every request runs on the same pooled connection, which each test checks by its id.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";
import { createMariaDatabase, createPgDatabase, mariaAdmin, MARIADB, PG, uniqueName } from "../support/services.js";

const LOCK_KEY = 73_115_888;
const ENV = { CONNECTION_MAX_CONCURRENCY: "1" };

/** A new user of `h` with a saved connection to `body`'s database, and their statements on it
 * through POST /databases/{id}/query: answered as they come (`run`), or their rows, which must
 * have been read (`rowsOf`). */
async function queriesOf(h: Harness, body: Record<string, unknown>) {
  const { token } = await h.newUser();
  const id = (await h.call("POST", "/databases/add_db_connection", { token, json: body })).body.db_connection.id as number;
  const run = (sql: string) => h.call("POST", `/databases/${id}/query`, { token, json: { sql } });
  const rowsOf = async (sql: string) => {
    const res = await run(sql);
    expect(res.status, res.text).toBe(200);
    return res.body.data.rows as unknown[][];
  };
  return { run, rowsOf };
}

/** A saved connection's body for `database` on the test's PostgreSQL. */
const pgBody = (database: string) => ({ db_type: "postgresql", host: PG.host, port: PG.port, database_name: database, username: PG.user, db_password: "unused" });

describe("PostgreSQL: a search_path that puts its owner's schema before pg_catalog", () => {
  let h: Harness;
  let db: Awaited<ReturnType<typeof createPgDatabase>>;
  beforeAll(async () => {
    db = await createPgDatabase("pulse_path");
    // Built-in names shadowed by functions that take a session advisory lock, and answer
    // otherwise than the built-ins (so that the test sees which ran), Pulse's own cleanup among
    // them (so that the lock would outlive the statement).
    await db.query(`CREATE SCHEMA owner_first;
      CREATE FUNCTION owner_first.lower(text) RETURNS text LANGUAGE sql AS $$ SELECT pg_catalog.pg_advisory_lock(${LOCK_KEY} + 10)::text || 'owner: ' || pg_catalog.lower($1) $$;
      CREATE FUNCTION owner_first.locking_eq(int4, int4) RETURNS bool LANGUAGE sql AS $$ SELECT pg_catalog.pg_try_advisory_lock(${LOCK_KEY} + 11) AND NOT $1 OPERATOR(pg_catalog.=) $2 $$;
      CREATE OPERATOR owner_first.= (LEFTARG = int4, RIGHTARG = int4, FUNCTION = owner_first.locking_eq);
      CREATE FUNCTION owner_first.pg_advisory_unlock_all() RETURNS void LANGUAGE sql AS $$ SELECT NULL::void $$;`);
    await db.query(`ALTER DATABASE "${db.name}" SET search_path = owner_first, pg_catalog, public`);
    // And settings that would make every read wait for a safe snapshot, or end idle pooled
    // connections as they are taken out.
    await db.query(`ALTER DATABASE "${db.name}" SET default_transaction_isolation = 'serializable'`);
    await db.query(`ALTER DATABASE "${db.name}" SET default_transaction_deferrable = on`);
    await db.query(`ALTER DATABASE "${db.name}" SET idle_session_timeout = '300ms'`);
    await db.query(`ALTER DATABASE "${db.name}" SET IntervalStyle = 'sql_standard'`);
    h = await createHarness({ env: ENV });
  });
  afterAll(async () => {
    await h?.close();
    await db?.drop();
  });

  it("runs the built-in functions and operators, so no statement takes a lock through them", async () => {
    const { rowsOf } = await queriesOf(h, pgBody(db.name));
    expect(await rowsOf("SELECT lower('X') AS l, 1 = 1 AS same")).toEqual([["x", true]]);
    const locks = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())");
    expect(locks[0]!.n).toBe(0);
    // The owner's schema is still where unqualified names of tables resolve first.
    expect(await rowsOf("SELECT current_schema() AS s")).toEqual([["owner_first"]]);
  });

  it("reads without waiting for a safe snapshot, intervals in the default text, on connections the server does not end when idle", async () => {
    const { rowsOf } = await queriesOf(h, pgBody(db.name));
    const value = async (sql: string) => (await rowsOf(sql))[0]![0];
    expect(await value("SHOW default_transaction_deferrable")).toBe("off");
    expect(await value("SELECT interval '1 day 2 hours'")).toBe("1 day 02:00:00");
    const pid = await value("SELECT pg_backend_pid()");
    await new Promise((resolve) => setTimeout(resolve, 1_000)); // past the database's idle_session_timeout
    expect(await value("SELECT pg_backend_pid()")).toBe(pid);
  });
});

describe("PostgreSQL: state a view or function leaves on the pooled connection", () => {
  let h: Harness;
  let db: Awaited<ReturnType<typeof createPgDatabase>>;
  let run: Awaited<ReturnType<typeof queriesOf>>["run"];
  let rowsOf: Awaited<ReturnType<typeof queriesOf>>["rowsOf"];

  beforeAll(async () => {
    db = await createPgDatabase("pulse_state");
    await db.query(`CREATE VIEW held AS SELECT pg_try_advisory_lock(${LOCK_KEY}) AS locked`);
    await db.query(`CREATE FUNCTION leave_state() RETURNS boolean LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_advisory_lock(${LOCK_KEY} + 1);
        EXECUTE 'PREPARE left_behind AS SELECT 1';
        RETURN true;
      END $$`);
    await db.query(`CREATE FUNCTION lock_then_fail() RETURNS boolean LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_advisory_lock(${LOCK_KEY} + 2);
        RAISE EXCEPTION 'failed after taking the lock';
      END $$`);
    h = await createHarness({ env: ENV });
    ({ run, rowsOf } = await queriesOf(h, pgBody(db.name)));
  });
  afterAll(async () => {
    await h?.close();
    await db?.drop();
  });

  /** Advisory locks held in the test's database, seen from a connection of its own. */
  const advisoryLocks = async () =>
    (await db.query<{ objid: number }>("SELECT objid::int8 AS objid FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY objid")).map((r) => Number(r.objid));

  it("releases an advisory lock taken inside a view once the query has answered", async () => {
    const [[locked, pid]] = (await rowsOf("SELECT locked, pg_backend_pid() FROM held")) as [[boolean, number]];
    expect(locked).toBe(true);
    expect(await advisoryLocks()).toEqual([]);
    // The next statement runs on the same connection, and the lock is free for it too.
    expect(await rowsOf("SELECT locked, pg_backend_pid() FROM held")).toEqual([[true, pid]]);
    expect(await advisoryLocks()).toEqual([]);
  });

  it("releases the lock and drops the prepared statement a function left, for the next statement", async () => {
    const [[, pid]] = (await rowsOf("SELECT leave_state(), pg_backend_pid()")) as [[boolean, number]];
    expect(await advisoryLocks()).toEqual([]);
    expect(await rowsOf("SELECT count(*)::int, pg_backend_pid() FROM pg_prepared_statements")).toEqual([[0, pid]]);
  });

  it("releases an advisory lock taken by a statement that then failed", async () => {
    const [[pid]] = (await rowsOf("SELECT pg_backend_pid()")) as [[number]];
    const res = await run("SELECT lock_then_fail()");
    expect(res.status, res.text).toBe(400);
    expect(res.body).toMatchObject({ code: "sql_failed" });
    expect(await advisoryLocks()).toEqual([]);
    expect(await rowsOf("SELECT pg_backend_pid()")).toEqual([[pid]]);
  });
});

describe("MariaDB: state a stored function leaves on the pooled connection", () => {
  let h: Harness;
  let db: Awaited<ReturnType<typeof createMariaDatabase>>;
  const user = uniqueName("pulse_s").slice(0, 60);
  const password = uniqueName("pw");
  let run: Awaited<ReturnType<typeof queriesOf>>["run"];
  let rowsOf: Awaited<ReturnType<typeof queriesOf>>["rowsOf"];

  beforeAll(async () => {
    db = await createMariaDatabase("pulse_state");
    for (const host of ["%", "localhost"]) {
      await mariaAdmin(`CREATE USER '${user}'@'${host}' IDENTIFIED BY '${password}'`);
      await mariaAdmin(`GRANT SELECT, EXECUTE ON \`${db.name}\`.* TO '${user}'@'${host}'`);
    }
    // GET_LOCK names are server-wide: the database's name is this test's own.
    await db.query(`CREATE FUNCTION leave_state() RETURNS INT NO SQL
      BEGIN
        SET @pulse_left_behind = 'secret of the previous user';
        RETURN GET_LOCK('${db.name}', 0);
      END`);
    await db.query(`CREATE FUNCTION lock_then_fail() RETURNS INT NO SQL
      BEGIN
        SET @pulse_left_behind = 'secret of the previous user';
        DO GET_LOCK('${db.name}', 0);
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'failed after taking the lock';
        RETURN 1;
      END`);
    h = await createHarness({ env: ENV });
    ({ run, rowsOf } = await queriesOf(h, { db_type: "mysql", host: MARIADB.host, port: MARIADB.port, database_name: db.name, username: user, db_password: password }));
  });
  afterAll(async () => {
    await h?.close();
    for (const host of ["%", "localhost"]) await mariaAdmin(`DROP USER IF EXISTS '${user}'@'${host}'`);
    await db?.drop();
  });

  const lockHeld = async () => (await mariaAdmin<{ held: number }>(`SELECT IS_USED_LOCK('${db.name}') IS NOT NULL AS held`))[0]!.held === 1;

  it("releases the GET_LOCK lock and forgets the user variable before the next statement", async () => {
    const [[locked, connection]] = (await rowsOf("SELECT leave_state(), CONNECTION_ID()")) as [[number, number]];
    expect(locked).toBe(1);
    expect(await lockHeld()).toBe(false);
    expect(await rowsOf("SELECT @pulse_left_behind, CONNECTION_ID()")).toEqual([[null, connection]]);
  });

  it("does the same after a statement that failed", async () => {
    const [[connection]] = (await rowsOf("SELECT CONNECTION_ID()")) as [[number]];
    const res = await run("SELECT lock_then_fail()");
    expect(res.status, res.text).toBe(400);
    expect(res.body).toMatchObject({ code: "sql_failed" });
    expect(await lockHeld()).toBe(false);
    expect(await rowsOf("SELECT @pulse_left_behind, CONNECTION_ID()")).toEqual([[null, connection]]);
  });
});
