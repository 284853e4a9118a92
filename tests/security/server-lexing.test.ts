// Security: the server reads a statement as the guard did, whatever lexing settings the
// customer's database runs with. Off by default, these settings make a backslash end a string
// the guard took as going on (or the other way round), so SQL the guard read as text would run:
// PostgreSQL's standard_conforming_strings = off, and MySQL/MariaDB's NO_BACKSLASH_ESCAPES and
// ANSI_QUOTES (also inside the composite ANSI mode). Each statement below is one the guard
// accepts as reading only literals; on a server left to those settings it read a file.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";
import { startPrivateMariadb, type PrivateMariadb } from "../support/private-mariadb.js";
import { createPgDatabase, PG, uniqueName } from "../support/services.js";

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(async () => {
  await h?.close();
});

async function connectionOf(token: string, body: Record<string, unknown>): Promise<number> {
  const added = await h.call("POST", "/databases/add_db_connection", { token, json: body });
  expect(added.status, added.text).toBe(201);
  return added.body.db_connection.id as number;
}

describe("PostgreSQL with standard_conforming_strings = off", () => {
  let db: Awaited<ReturnType<typeof createPgDatabase>>;
  beforeAll(async () => {
    db = await createPgDatabase("pulse_lexing");
    await db.query(`ALTER DATABASE "${db.name}" SET standard_conforming_strings = off`);
  });
  afterAll(async () => {
    await db?.drop();
  });

  it("runs Pulse's sessions with it on, so a backslash before a quote stays inside the string", async () => {
    const user = await h.newUser();
    const id = await connectionOf(user.token, { db_type: "postgresql", host: PG.host, port: PG.port, database_name: db.name, username: PG.user, db_password: "unused" });
    const query = (sql: string) => h.call("POST", `/databases/${id}/query`, { token: user.token, json: { sql } });

    const setting = await query("SHOW standard_conforming_strings");
    expect(setting.body.data?.rows, setting.text).toEqual([["on"]]);
    // The guard reads '\' as a string, then $$...$$ as another, then a comment. With the setting
    // off the server read "' , $$" as the first string, and called pg_read_file.
    const res = await query("SELECT '\\' AS a, $$' , pg_read_file('/etc/hostname') , '$$ AS b --'");
    expect(res.status, res.text).toBe(200);
    expect(res.body.data.rows).toEqual([["\\", "' , pg_read_file('/etc/hostname') , '"]]);
  });
});

describe("MariaDB running with sql_mode ANSI and NO_BACKSLASH_ESCAPES", () => {
  let server: PrivateMariadb;
  const database = uniqueName("pulse_lexing");
  const user = uniqueName("lexing").slice(0, 60);
  const password = uniqueName("secret");
  beforeAll(async () => {
    server = await startPrivateMariadb(["sql-mode=ANSI,NO_BACKSLASH_ESCAPES"]);
    await server.admin(`CREATE DATABASE ${database}`);
    await server.admin(`CREATE USER '${user}'@'%' IDENTIFIED BY '${password}'`);
    // FILE: the privilege LOAD_FILE needs, which the guard refuses by name.
    await server.admin(`GRANT SELECT, FILE ON *.* TO '${user}'@'%'`);
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
  });

  it("lexes Pulse's statements as MySQL's defaults do, keeping the database's other modes", async () => {
    const owner = await h.newUser();
    const id = await connectionOf(owner.token, { db_type: "mysql", host: "127.0.0.1", port: server.port, database_name: database, username: user, db_password: password });
    const query = (sql: string) => h.call("POST", `/databases/${id}/query`, { token: owner.token, json: { sql } });

    const mode = await query("SHOW SESSION VARIABLES LIKE 'sql_mode'");
    expect(mode.status, mode.text).toBe(200);
    expect(String(mode.body.data.rows[0][1]).split(",").sort()).toEqual(["IGNORE_SPACE", "PIPES_AS_CONCAT", "REAL_AS_FLOAT"]);

    // A double-quoted string: a string again, not an identifier that ANSI_QUOTES ends at the backslash.
    const quoted = await query('SELECT "x" AS v');
    expect(quoted.body.data?.rows, quoted.text).toEqual([["x"]]);
  }, 30_000);

  it("refuses a backslash-escaped quote in a quoted alias, as in a string", async () => {
    const owner = await h.newUser();
    const id = await connectionOf(owner.token, { db_type: "mysql", host: "127.0.0.1", port: server.port, database_name: database, username: user, db_password: password });
    for (const sql of ["SELECT 1 AS 'a\\' , LOAD_FILE(0x2f6574632f686f73746e616d65) -- '", 'SELECT 1 AS "a\\" , LOAD_FILE(0x2f6574632f686f73746e616d65) -- "']) {
      const res = await h.call("POST", `/databases/${id}/query`, { token: owner.token, json: { sql } });
      expect(res.status, `${sql}: ${res.text}`).toBe(400);
      expect(res.body.detail).toContain("backslash-escaped quote");
    }
  }, 30_000);
});
