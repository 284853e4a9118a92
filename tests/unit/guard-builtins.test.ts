// Reads the guard must not refuse: every built-in function of each dialect called in a SELECT,
// and the forms of EXPLAIN that only plan or only show the plan differently. The lists come from the real servers (MariaDB's
// help tables, SQLite's pragma_function_list); a sample of each also runs on the real database,
// so the read works end to end. Writes around the same calls are still refused.

import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { findDangerousFunction } from "../../src/connectors/guard/dangerous-functions.js";
import { classifyStatement, loadGuard } from "../../src/connectors/guard/index.js";
import { KEYWORD_FUNCTIONS } from "../../src/connectors/guard/mysql-keyword-functions.js";
import { createMariaDatabase, createPgDatabase, mariaAdmin } from "../support/services.js";

let maria: Awaited<ReturnType<typeof createMariaDatabase>>;
let postgres: Awaited<ReturnType<typeof createPgDatabase>>;

beforeAll(async () => {
  await loadGuard();
  maria = await createMariaDatabase("pulse_builtins");
  await maria.query("CREATE TABLE users (id int PRIMARY KEY, name varchar(20) DEFAULT 'nobody')");
  await maria.query("INSERT INTO users VALUES (1, 'ada'), (2, 'bob')");
  postgres = await createPgDatabase("pulse_builtins");
  await postgres.query("CREATE TABLE guard_users (id int); INSERT INTO guard_users VALUES (1)");
});
afterAll(async () => {
  await maria?.drop();
  await postgres?.drop();
});

const accepted = { ok: true, kind: "select" } as const;

describe("MySQL/MariaDB built-in functions", () => {
  /** In MariaDB's function help, but operators or keywords rather than calls. */
  const OPERATORS = new Set(["DIV", "IN", "IS", "LIKE", "REGEXP", "RLIKE", "XOR"]);

  it("lets through a call of every function in MariaDB's help tables, dangerous ones apart", async () => {
    const rows = await mariaAdmin<{ name: string }>(
      "SELECT DISTINCT REPLACE(t.name, '\\\\_', '_') AS name FROM mysql.help_topic t JOIN mysql.help_category c USING (help_category_id) " +
        "WHERE c.name REGEXP 'Function|Geographic|Geometry|WKB|WKT|MBR|properties|Control|Encryption|Information|Comparison|Logical'",
    );
    const names = rows.map((row) => row.name).filter((name) => /^[A-Za-z_0-9]+$/.test(name));
    expect(names.length).toBeGreaterThan(300);
    const refused = names
      .filter((name) => !OPERATORS.has(name) && !findDangerousFunction("mysql", name))
      .map((name) => ({ name, verdict: classifyStatement("mysql", `SELECT ${name}(1)`) }))
      .filter(({ verdict }) => !verdict.ok);
    expect(refused).toEqual([]);
  });

  // Each keyword-named function, with arguments MariaDB takes, in upper and lower case.
  const calls = [
    "SELECT REPLACE(name, 'a', 'b') FROM users",
    "SELECT REPEAT('x', 3)",
    "SELECT INSERT('abc', 2, 1, 'Z')",
    "SELECT CHAR(65, 66), CHARACTER(67)",
    "SELECT CURRENT_DATE(), CURRENT_TIME(), CURRENT_TIMESTAMP(), CURRENT_USER()",
    "SELECT DATABASE(), SCHEMA()",
    "SELECT DEFAULT(name) FROM users",
    "SELECT INTERVAL(5, 1, 10, 20)",
    "SELECT LOCALTIME(), LOCALTIMESTAMP()",
    "SELECT MOD(id, 2) FROM users",
    "SELECT UTC_DATE(), UTC_TIME(), UTC_TIMESTAMP()",
    "select replace(name, 'a', 'b') as r, repeat (name, 2) from users where name <> 'REPLACE('",
    "SELECT LEFT(REPLACE(name, 'a', 'b'), 2) FROM users WHERE MOD(id, 2) = 1 ORDER BY REPEAT(name, 2)",
    "WITH r AS (SELECT REPLACE(name, 'a', 'b') AS n FROM users) SELECT n FROM r",
    "SELECT CONVERT(name USING utf8mb4), CONVERT(id, SIGNED), CHAR(65 USING utf8mb4) FROM users",
    "SELECT GROUP_CONCAT(name ORDER BY id SEPARATOR ', '), GROUP_CONCAT(DISTINCT name SEPARATOR '') FROM users",
    "SELECT u.name FROM users u JOIN users v USING (id) WHERE REPEAT(u.name, 1) = v.name",
    // Casts to the types the grammar lacks.
    "SELECT CAST(id AS SIGNED), CAST('7' AS UNSIGNED), cast(id as signed integer), CAST(id AS UNSIGNED INT) FROM users",
    "SELECT CONVERT(id, CHAR), CONVERT(name, CHAR CHARACTER SET utf8mb4), CAST(name AS CHAR(10) CHARSET latin1) FROM users",
    "SELECT REPLACE(CAST(id AS CHAR(3)), '1', 'x'), MOD(CAST(name AS SIGNED), 2) FROM users",
    // TRIM's and SUBSTRING's standard arguments, and system variables.
    "SELECT TRIM(LEADING 'a' FROM name), TRIM(BOTH FROM name), trim(trailing 'b' from name) FROM users",
    "SELECT SUBSTRING(name FROM 2 FOR 1), SUBSTR(name FROM 2), SUBSTRING((SELECT name FROM users LIMIT 1) FROM 1 FOR 2) FROM users",
    "SELECT @@version, @@SESSION.sql_mode, @@global.max_connections, REPLACE(@@version, '-', ' ')",
  ];

  it("covers every keyword-named function", () => {
    const called = new Set(calls.flatMap((sql) => [...sql.toUpperCase().matchAll(/([A-Z_]+) ?\(/g)].map((match) => match[1])));
    expect([...KEYWORD_FUNCTIONS].filter((name) => !called.has(name))).toEqual([]);
  });

  it.each(calls)("accepts %s, and MariaDB runs it", async (sql) => {
    expect(classifyStatement("mysql", sql)).toEqual(accepted);
    await expect(maria.query(sql)).resolves.toBeDefined();
  });

  it.each([
    ["REPLACE INTO users (id, name) VALUES (1, REPLACE('a', 'a', 'b'))", "not_read_only"],
    ["INSERT INTO users (id, name) VALUES (2, REPEAT('a', 2))", "not_read_only"],
    ["UPDATE users SET name = REPLACE(name, 'a', 'b')", "not_read_only"],
    ["DELETE FROM users WHERE MOD(id, 2) = 0", "not_read_only"],
    ["SELECT REPLACE(name, 'a', 'b') FROM users FOR UPDATE", "locking_clause"],
    ["SELECT REPEAT('x', 2) INTO OUTFILE '/tmp/x'", "into_outfile"],
    ["SELECT SLEEP(MOD(5, 3))", "dangerous_function"],
    ["SELECT REPLACE(name, 'a', 'b') FROM users; DELETE FROM users", "multiple_statements"],
    ["SELECT REPLACE(name, /*!50000 'a' */ 'a', 'b') FROM users", "executable_comment"],
    ["SELECT GROUP_CONCAT(name SEPARATOR '\\' ') FROM users", "ambiguous_lexing"],
    ["SELECT GROUP_CONCAT(SLEEP(1) SEPARATOR ',') FROM users", "dangerous_function"],
    ["DELETE FROM users USING users JOIN users v ON users.id = v.id", "not_read_only"],
    ["UPDATE users SET id = CAST('3' AS UNSIGNED)", "not_read_only"],
    ["SELECT CAST(SLEEP(1) AS SIGNED)", "dangerous_function"],
    ["SELECT CONVERT(name, CHAR CHARACTER SET utf8mb4) FROM users FOR UPDATE", "locking_clause"],
    ["SELECT SUBSTRING(name FROM (SELECT SLEEP(1))) FROM users", "dangerous_function"],
    ["SELECT TRIM(LEADING (SELECT name FROM users FOR UPDATE) FROM name) FROM users", "locking_clause"],
    ["SELECT @@version FROM users; DELETE FROM users", "multiple_statements"],
    // What the connection's previous statement left, and assignments, stay unparsed.
    ["SELECT @@warning_count", "parse_error"],
    ["SELECT @@SESSION.error_count, @@identity", "parse_error"],
    ["SELECT @@session.sql_mode := ''", "parse_error"],
    // However the name is written: an alias of '.', spaces or a comment around the dot, quoted.
    ["SELECT @@warning_count'.' FROM dual", "parse_error"],
    ['SELECT @@last_insert_id "." FROM dual', "parse_error"],
    ["SELECT @@session . warning_count, @@local./**/error_count", "parse_error"],
    ["SELECT @@session.`warning_count`", "parse_error"],
    ["SELECT VARIABLE_VALUE FROM information_schema.SESSION_VARIABLES WHERE VARIABLE_NAME = 'LAST_INSERT_ID'", "session_control"],
    ["SELECT * FROM performance_schema.user_variables_by_thread", "session_control"],
  ])("still refuses %s", (sql, rule) => {
    expect(classifyStatement("mysql", sql)).toMatchObject({ ok: false, rule });
  });

  it("reports the user's own positions when the quoted form does not parse either", () => {
    expect(classifyStatement("mysql", "SELECT REPLACE(name, 'a' FROM users")).toEqual({
      ok: false,
      rule: "parse_error",
      reason: 'syntax error at or near "REPLACE" (line 1, column 8)',
    });
  });
});

describe("MySQL/MariaDB EXPLAIN forms", () => {
  it.each([
    ["EXPLAIN FORMAT=JSON SELECT * FROM users", "explain"],
    ["EXPLAIN EXTENDED SELECT * FROM users", "explain"],
    ["EXPLAIN PARTITIONS SELECT * FROM users", "explain"],
    ["DESCRIBE FORMAT = JSON SELECT REPLACE(name, 'a', 'b') FROM users", "explain"],
    ["EXPLAIN FORMAT=JSON DELETE FROM users", "explain"],
    ["EXPLAIN EXTENDED UPDATE users SET name = 'x'", "explain"],
    ["ANALYZE SELECT * FROM users", "select"],
    ["ANALYZE FORMAT=JSON SELECT id FROM users WHERE MOD(id, 2) = 0", "select"],
  ] as const)("accepts %s, and MariaDB answers it without a change", async (sql, kind) => {
    expect(classifyStatement("mysql", sql)).toEqual({ ok: true, kind });
    await expect(maria.query(sql)).resolves.toBeDefined();
    expect(await maria.query("SELECT id, name FROM users ORDER BY id")).toEqual([
      { id: 1, name: "ada" },
      { id: 2, name: "bob" },
    ]);
  });

  it("accepts MySQL 8's EXPLAIN FORMAT=TREE and EXPLAIN ANALYZE FORMAT=TREE of a read", () => {
    expect(classifyStatement("mysql", "EXPLAIN FORMAT=TREE SELECT * FROM users")).toEqual({ ok: true, kind: "explain" });
    expect(classifyStatement("mysql", "EXPLAIN ANALYZE FORMAT=TREE SELECT * FROM users")).toEqual({ ok: true, kind: "explain" });
  });

  it.each([
    ["EXPLAIN ANALYZE FORMAT=TREE DELETE FROM users", "explain_analyze_write"],
    ["ANALYZE DELETE FROM users", "not_read_only"],
    ["ANALYZE FORMAT=JSON UPDATE users SET name = 'x'", "not_read_only"],
    ["ANALYZE TABLE users", "not_read_only"],
    ["ANALYZE SELECT * FROM users FOR UPDATE", "locking_clause"],
    ["ANALYZE SELECT 1 INTO @x", "select_into"],
    ["EXPLAIN FORMAT=JSON SELECT * INTO OUTFILE '/tmp/x' FROM users", "into_outfile"],
    ["EXPLAIN FORMAT=JSON SELECT 1; DELETE FROM users", "multiple_statements"],
    ["ANALYZE SELECT SLEEP(1)", "dangerous_function"],
  ])("still refuses %s", (sql, rule) => {
    expect(classifyStatement("mysql", sql)).toMatchObject({ ok: false, rule });
  });
});

describe("SQLite built-in functions", () => {
  const sqlite = new Database(":memory:");
  afterAll(() => sqlite.close());
  sqlite.exec("CREATE TABLE users (id integer PRIMARY KEY, name text)");

  /** `->` and `->>` are operators listed as functions; match() is FTS's, which sql-parser-cst
   * reads as the MATCH operator: refused as a parse error until the parser has it. */
  const NOT_CALLS = new Set(["->", "->>", "match"]);
  const NO_PARENTHESES = new Set(["current_date", "current_time", "current_timestamp"]);

  function callOf(name: string, narg: number, type: string): string {
    if (NO_PARENTHESES.has(name)) return `SELECT ${name}`;
    const args = name === "likelihood" ? ["1", "0.5"] : Array.from({ length: narg < 0 ? 2 : narg }, () => "1");
    return `SELECT ${name}(${args.join(", ")})${type === "w" ? " OVER ()" : ""} FROM users`;
  }

  const functions = sqlite.prepare("SELECT DISTINCT name, narg, type FROM pragma_function_list").all() as { name: string; narg: number; type: string }[];

  it("reads SQLite's own list of functions", () => {
    expect(functions.length).toBeGreaterThan(150);
  });

  it("accepts every function of pragma_function_list, dangerous ones apart, and SQLite compiles each call", () => {
    const failures = functions
      .filter(({ name }) => !NOT_CALLS.has(name) && !findDangerousFunction("sqlite", name))
      .map(({ name, narg, type }) => callOf(name, narg, type))
      .filter((sql) => {
        sqlite.prepare(sql);
        return !classifyStatement("sqlite", sql).ok;
      });
    expect(failures).toEqual([]);
  });
});

describe("PostgreSQL: functions with their own syntax, and EXPLAIN that only plans", () => {
  it.each([
    "SELECT overlay('abcdef' placing 'zz' from 2 for 3), position('c' in 'abc'), substring('abcdef' from 2 for 3)",
    "SELECT trim(both 'x' from 'xaxx'), extract(year from now()), normalize('a', NFC), 'a' IS NFC NORMALIZED",
    "SELECT collation for ('a'), current_date, current_role, session_user, localtimestamp(2)",
    "SELECT xmlelement(name a, 'b'), xmlforest(1 AS one), treat_as_text FROM (SELECT 'x' AS treat_as_text) t",
    "SELECT coalesce(NULL, 1), nullif(1, 2), greatest(1, 2), least(1, 2), replace('abc', 'b', 'x'), repeat('x', 3)",
    "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x), mode() WITHIN GROUP (ORDER BY x) FROM generate_series(1, 4) x",
  ])("accepts %s, and PostgreSQL runs it", async (sql) => {
    expect(classifyStatement("postgresql", sql)).toEqual(accepted);
    await expect(postgres.query(sql)).resolves.toBeDefined();
  });

  const planOnly = [
    "EXPLAIN DELETE FROM guard_users",
    "EXPLAIN (ANALYZE false) DELETE FROM guard_users",
    "EXPLAIN (ANALYZE off) DELETE FROM guard_users",
    "EXPLAIN (ANALYZE OFF, COSTS false) UPDATE guard_users SET id = 2",
    "EXPLAIN (ANALYZE 0) INSERT INTO guard_users VALUES (3)",
    "EXPLAIN (ANALYSE FALSE) DELETE FROM guard_users",
    "EXPLAIN (ANALYZE 'false', VERBOSE) DELETE FROM guard_users",
    'EXPLAIN (ANALYZE "off") DELETE FROM guard_users',
    "EXPLAIN (ANALYZE true, ANALYZE false) DELETE FROM guard_users",
  ];

  it.each(planOnly)("accepts %s, and PostgreSQL only plans it inside BEGIN READ ONLY", async (sql) => {
    expect(classifyStatement("postgresql", sql)).toEqual({ ok: true, kind: "explain" });
    await postgres.query(`BEGIN READ ONLY; ${sql}; COMMIT`);
    expect(await postgres.query("SELECT count(*)::int AS n FROM guard_users")).toEqual([{ n: 1 }]);
  });

  it.each([
    "EXPLAIN ANALYZE DELETE FROM guard_users",
    "EXPLAIN (ANALYZE) DELETE FROM guard_users",
    "EXPLAIN (ANALYZE true) DELETE FROM guard_users",
    "EXPLAIN (ANALYZE on) DELETE FROM guard_users",
    "EXPLAIN (ANALYZE 1) DELETE FROM guard_users",
    "EXPLAIN (ANALYZE false, ANALYZE true) DELETE FROM guard_users",
    "EXPLAIN (ANALYZE 'no') DELETE FROM guard_users",
    "EXPLAIN (ANALYZE 2) DELETE FROM guard_users",
  ])("still refuses %s: it runs the write (or is not a value PostgreSQL reads as off)", (sql) => {
    expect(classifyStatement("postgresql", sql)).toMatchObject({ ok: false, rule: "explain_analyze_write" });
  });

  it("still refuses a write EXPLAIN would run whatever ANALYZE says", () => {
    expect(classifyStatement("postgresql", "EXPLAIN (ANALYZE off) CREATE TABLE x AS SELECT 1")).toMatchObject({ ok: false, rule: "not_read_only" });
    expect(classifyStatement("postgresql", "EXPLAIN (ANALYZE off) DELETE FROM t WHERE pg_sleep(1) IS NULL")).toMatchObject({
      ok: false,
      rule: "dangerous_function",
    });
  });
});
