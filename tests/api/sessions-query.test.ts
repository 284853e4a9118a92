// Database sessions (seed 004) and direct SQL (seed 000) over HTTP, with Redis sessions and a
// PostgreSQL store, against Chinook on SQLite and a real PostgreSQL target.

import Database from "better-sqlite3";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";
import { uniqueName } from "../support/services.js";
import { postgresTarget, sqliteTarget, type TargetDb } from "../support/targets.js";

let h: Harness;
let chinook: TargetDb;
let pgTarget: TargetDb;

beforeAll(async () => {
  h = await createHarness({ store: "postgresql", sessions: "redis", env: { QUERY_TIMEOUT_MS: "5000" } });
  chinook = await sqliteTarget(h.sqliteRoot);
  pgTarget = await postgresTarget();
});
afterAll(async () => {
  await pgTarget?.drop();
  await h?.close();
});

async function userWith(target: TargetDb) {
  const user = await h.newUser();
  const added = await h.call("POST", "/databases/add_db_connection", { token: user.token, json: target.body });
  expect(added.status).toBe(201);
  return { ...user, dbId: added.body.db_connection.id as number };
}

describe("POST /databases/connect_db/{id}", () => {
  it("connects the session, caches the schema in the session hash and reports it", async () => {
    const user = await userWith(chinook);
    const res = await h.call("POST", `/databases/connect_db/${user.dbId}`, { token: user.token });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      message: "Database connection successful and tools updated",
      session_id: user.sessionId,
      thread_id: user.sessionId,
      db_id: user.dbId,
      database_name: chinook.body.database_name,
      user_id: user.id,
      tables: 11,
    });
    const hash = await h.redis!.raw.hgetall(`${h.redis!.prefix}session:${user.sessionId}`);
    expect(hash).toMatchObject({ status: "connected", db_id: String(user.dbId), user_id: String(user.id) });
    expect(hash.db_schema).toContain("Album(AlbumId integer PK");
    expect(h.deps.connectors.has(user.dbId)).toBe(true);
  });

  it("answers 404 for another user's connection", async () => {
    const alice = await userWith(chinook);
    const bob = await h.newUser();
    const res = await h.call("POST", `/databases/connect_db/${alice.dbId}`, { token: bob.token });
    expect(res.status).toBe(404);
  });

  // Fifteen SQLite connections, each its own child process: 6 s alone, past 30 s beside other
  // test files on two cores. What it proves is the statuses, not the time.
  it("answers 404, never 500, when the connection is deleted while it connects", { timeout: 120_000 }, async () => {
    const user = await h.newUser();
    const statuses = new Set<number>();
    for (let i = 0; i < 15; i++) {
      const created = await h.call("POST", "/databases/add_db_connection", { token: user.token, json: (await sqliteTarget(h.sqliteRoot)).body });
      const id = created.body.db_connection.id as number;
      // Connected once, so its connector is cached and the next connect is quick to reach the row.
      expect((await h.call("POST", `/databases/connect_db/${id}`, { token: user.token })).status).toBe(200);
      const [connect] = await Promise.all([
        h.call("POST", `/databases/connect_db/${id}`, { token: user.token }),
        h.call("DELETE", `/databases/${id}`, { token: user.token }),
      ]);
      statuses.add(connect.status);
    }
    expect([...statuses].filter((s) => s !== 200 && s !== 404)).toEqual([]);
  });
});

describe("session status, info and disconnect", () => {
  it("reports status, masks the password in the connection string, and disconnects", async () => {
    const user = await userWith(pgTarget);
    expect((await h.call("GET", "/databases/session-status", { token: user.token })).body).toMatchObject({ database_connected: false, user_id: user.id });
    await h.call("POST", `/databases/connect_db/${user.dbId}`, { token: user.token });
    expect((await h.call("GET", "/databases/session-status", { token: user.token })).body).toMatchObject({
      user_id: user.id,
      session_id: user.sessionId,
      thread_id: user.sessionId,
      database_connected: true,
    });
    const health = await h.call("GET", "/health/session", { token: user.token });
    expect(health.body).toMatchObject({ status: "healthy", user_id: user.id, database_connected: true });

    const info = await h.call("GET", `/databases/session-info/${user.sessionId}`, { token: user.token });
    expect(info.status).toBe(200);
    expect(info.body.session_data.connection_string).toBe(`postgresql://postgres:***@127.0.0.1:5432/${pgTarget.body.database_name}`);
    expect(info.body.session_data.db_schema).toContain("items(id integer PK, name text)");
    expect(info.body.redis_data).toEqual(info.body.session_data);
    expect(info.text).not.toContain(pgTarget.password);

    const out = await h.call("POST", "/databases/disconnect-session", { token: user.token });
    expect(out.body).toEqual({
      message: "Session disconnected successfully",
      session_id: user.sessionId,
      thread_id: user.sessionId,
      user_id: user.id,
      session_removed: true,
      redis_cleanup: true,
    });
    expect(await h.redis!.raw.exists(`${h.redis!.prefix}session:${user.sessionId}`)).toBe(0);
    expect(h.deps.connectors.has(user.dbId)).toBe(false);
    expect((await h.call("GET", "/databases/session-status", { token: user.token })).body.database_connected).toBe(false);
  });

  it("keeps 16,000 bytes of a large schema in the session, whole tables, and says where the rest is", async () => {
    const name = `${uniqueName("wide")}.sqlite`;
    const file = new Database(path.join(h.sqliteRoot, name));
    file.transaction(() => {
      // Names of three bytes a character in UTF-8, as in CJK scripts.
      for (let i = 0; i < 600; i++) file.exec(`CREATE TABLE table_${i} (id integer primary key, 顧客名 text, amount real, created_at text)`);
    })();
    file.close();
    const user = await h.newUser();
    const added = await h.call("POST", "/databases/add_db_connection", { token: user.token, json: { db_type: "sqlite", database_name: name } });
    const id = added.body.db_connection.id as number;
    expect((await h.call("POST", `/databases/connect_db/${id}`, { token: user.token })).status).toBe(200);
    const kept = (await h.call("GET", `/databases/session-info/${user.sessionId}`, { token: user.token })).body.session_data.db_schema as string;
    const lines = kept.split("\n");
    expect(Buffer.byteLength(kept)).toBeLessThanOrEqual(16_000 + 100);
    expect(Buffer.byteLength(kept)).toBeGreaterThan(15_000);
    expect(lines.at(-1)).toMatch(new RegExp(`^-- \\d+ more tables: GET /databases/${id}/schema has them all$`));
    expect(lines.slice(0, -1).every((line) => /^table_\d+\(id integer PK, "顧客名" text, amount real, created_at text\)/.test(line))).toBe(true);
    // The schema itself is whole.
    expect((await h.call("GET", `/databases/${id}/schema`, { token: user.token })).body.tables).toHaveLength(600);
  });

  it("gives every time in ISO 8601", async () => {
    const user = await userWith(chinook);
    await h.call("POST", `/databases/connect_db/${user.dbId}`, { token: user.token });
    const info = await h.call("GET", `/databases/session-info/${user.sessionId}`, { token: user.token });
    const iso = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
    expect(info.body.session_data.created_at).toMatch(iso);
    expect(info.body.db_session_created_at).toMatch(iso);
    expect(Math.abs(Date.parse(info.body.session_data.created_at) - Date.now())).toBeLessThan(60_000);
  });

  it("shows no cached schema once the connection is moved to another database, until connect_db caches that one's", async () => {
    const user = await userWith(chinook);
    const other = await sqliteTarget(h.sqliteRoot);
    const file = new Database(path.join(h.sqliteRoot, other.body.database_name as string));
    file.exec("CREATE TABLE moved_here (id integer primary key)");
    file.close();
    await h.call("POST", `/databases/connect_db/${user.dbId}`, { token: user.token });
    const infoOf = async () => (await h.call("GET", `/databases/session-info/${user.sessionId}`, { token: user.token })).body.session_data;
    expect((await infoOf()).db_schema).toContain("Album(");
    // Renamed only: still the same database, and its schema.
    expect((await h.call("PUT", `/databases/${user.dbId}`, { token: user.token, json: { name: "renamed" } })).status).toBe(200);
    expect((await infoOf()).db_schema).toContain("Album(");
    expect((await h.call("PUT", `/databases/${user.dbId}`, { token: user.token, json: { database_name: other.body.database_name } })).status).toBe(200);
    expect(await infoOf()).toMatchObject({ connection_string: `sqlite:///${other.body.database_name}`, status: "connected", db_schema: null });
    await h.call("POST", `/databases/connect_db/${user.dbId}`, { token: user.token });
    expect((await infoOf()).db_schema).toContain("moved_here(");
  });

  it("masks no password where the connection has none", async () => {
    const user = await userWith({ ...pgTarget, body: { ...pgTarget.body, db_password: "" } });
    await h.call("POST", `/databases/connect_db/${user.dbId}`, { token: user.token });
    const info = await h.call("GET", `/databases/session-info/${user.sessionId}`, { token: user.token });
    expect(info.body.session_data.connection_string).toBe(`postgresql://postgres@127.0.0.1:5432/${pgTarget.body.database_name}`);
  });

  it("answers 404 with seed 004's message for another user's session or an unknown one", async () => {
    const alice = await h.newUser();
    const bob = await h.newUser();
    for (const id of [alice.sessionId, "00000000-0000-0000-0000-000000000000"]) {
      const res = await h.call("GET", `/databases/session-info/${id}`, { token: bob.token });
      expect(res.status).toBe(404);
      expect(res.body.detail).toBe("Session ID does not belong to the authenticated user or session not found");
    }
  });
});

describe("POST /query", () => {
  it("runs a read on the session's database, in seed 000's shape", async () => {
    const user = await userWith(chinook);
    await h.call("POST", `/databases/connect_db/${user.dbId}`, { token: user.token });
    const res = await h.call("POST", "/query", { token: user.token, json: { sql: "SELECT ArtistId, Name FROM Artist ORDER BY ArtistId LIMIT 2" } });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      status: "ok",
      data: {
        columns: ["ArtistId", "Name"],
        column_types: ["integer", "nvarchar(120)"],
        rows: [[1, "AC/DC"], [2, "Accept"]],
        row_count: 2,
        truncated: false,
        execution_time_ms: expect.any(Number),
      },
      error: null,
      health: [],
    });
  });

  it("names SQLite expression columns by what they hold, as the other dialects name a result's types", async () => {
    const user = await userWith(chinook);
    await h.call("POST", `/databases/connect_db/${user.dbId}`, { token: user.token });
    // SQLite declares no type for an expression: each takes its first non-null value's storage
    // class, and one with none stays "".
    const sql = "SELECT count(*) AS n, avg(Milliseconds) AS mean, max(Name) || '!' AS shout, NULL AS missing, max(Name) AS named FROM Track WHERE GenreId = 1";
    const res = await h.call("POST", "/query", { token: user.token, json: { sql } });
    expect(res.status, res.text).toBe(200);
    expect(res.body.data.column_types).toEqual(["integer", "real", "text", "", "text"]);
  });

  it("runs on a named connection, at /databases/{id}/query and the /api/v1 aliases too", async () => {
    const user = await userWith(pgTarget);
    const sql = "SELECT id, name FROM items ORDER BY id";
    const expected = [[1, "one"], [2, "two"]];
    for (const [path, body] of [
      ["/query", { sql, connection_id: user.dbId }],
      ["/api/v1/query", { sql, connection_id: user.dbId }],
      [`/databases/${user.dbId}/query`, { sql }],
      [`/api/v1/instances/${user.dbId}/query`, { sql }],
    ] as const) {
      const res = await h.call("POST", path, { token: user.token, json: body });
      expect(res.status, path).toBe(200);
      expect(res.body.data.rows).toEqual(expected);
    }
  });

  it("checks the body like every route: 415 for another media type, 400 for bad JSON, 422 with field paths", async () => {
    const user = await userWith(chinook);
    await h.call("POST", `/databases/connect_db/${user.dbId}`, { token: user.token });
    const envelope = { status: "error", data: null };
    const send = (path: string, body: string | Uint8Array | undefined, headers: Record<string, string>) =>
      h.app.request(path, { method: "POST", body, headers: { authorization: `Bearer ${user.token}`, ...headers } });

    const plain = await send("/query", "SELECT 1", { "content-type": "text/plain" });
    expect(plain.status).toBe(415);
    expect(await plain.json()).toMatchObject({ ...envelope, code: "unsupported_media_type", detail: expect.stringContaining("Content-Type: application/json") });
    const untyped = await send("/query", new TextEncoder().encode('{"sql":"SELECT 1"}'), {});
    expect(untyped.status).toBe(415);

    const malformed = await send("/query", '{"sql":', { "content-type": "application/json" });
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toMatchObject({ ...envelope, code: "bad_request", detail: "Malformed JSON in request body" });

    for (const body of ["{}", '{"sql":""}', "[]"]) {
      const invalid = await send("/query", body, { "content-type": "application/json" });
      expect(invalid.status, body).toBe(422);
      expect(await invalid.json(), body).toMatchObject({ ...envelope, code: "invalid_input", errors: [{ path: expect.stringMatching(/^body/) }] });
    }
    const empty = await send("/query", undefined, {});
    expect(empty.status).toBe(422);
    expect(await empty.json()).toMatchObject({ code: "invalid_input", errors: [{ path: "body.sql" }] });

    // The path is checked before the body, as for every route.
    const badId = await send("/databases/abc/query", '{"sql":', { "content-type": "application/json" });
    expect(badId.status).toBe(422);
    expect(await badId.json()).toMatchObject({ ...envelope, code: "invalid_input", errors: [{ path: "param.id" }] });

    const charset = await send("/query", '{"sql":"SELECT 1 AS one"}', { "content-type": "application/json; charset=utf-8" });
    expect(charset.status).toBe(200);
  });

  it("caps rows and says the result was truncated", async () => {
    const user = await userWith(chinook);
    const res = await h.call("POST", `/databases/${user.dbId}/query`, { token: user.token, json: { sql: "SELECT * FROM Track", max_rows: 10 } });
    expect(res.body.data).toMatchObject({ row_count: 10, truncated: true });
    expect(res.body.data.rows).toHaveLength(10);
  });

  it("refuses a write with 400, the rule and seed 000's error envelope, touching nothing", async () => {
    const user = await userWith(pgTarget);
    const res = await h.call("POST", `/databases/${user.dbId}/query`, { token: user.token, json: { sql: "WITH d AS (DELETE FROM items RETURNING *) SELECT * FROM d" } });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ status: "error", data: null, code: "sql_refused", rule: "data_modifying_cte" });
    expect(res.body.error).toBe(res.body.detail);
    const count = await h.call("POST", `/databases/${user.dbId}/query`, { token: user.token, json: { sql: "SELECT count(*) AS n FROM items" } });
    expect(count.body.data.rows).toEqual([[2]]);
  });

  it("answers a statement that does not parse with one short line naming the token and its position", async () => {
    const user = await userWith(chinook);
    const res = await h.call("POST", `/databases/${user.dbId}/query`, { token: user.token, json: { sql: "SELECT FROM Artist" } });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ code: "sql_refused", rule: "parse_error" });
    expect(res.body.detail).toContain('syntax error at or near "FROM" (line 1, column 8)');
    expect(res.body.detail.length).toBeLessThan(200);
  });

  it("answers 400 with the database's message for a failing read", async () => {
    const user = await userWith(pgTarget);
    const res = await h.call("POST", `/databases/${user.dbId}/query`, { token: user.token, json: { sql: "SELECT * FROM no_such_table" } });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ status: "error", code: "sql_failed" });
    expect(res.body.detail).toMatch(/no_such_table/);
    // Seed 000's words for it in the envelope.
    expect(res.body.error).toBe(`SQL execution failed: ${res.body.detail}`);
  });

  it("answers 408 when the statement times out", async () => {
    const user = await userWith(pgTarget);
    const res = await h.call("POST", `/databases/${user.dbId}/query`, {
      token: user.token,
      json: { sql: "SELECT count(*) FROM generate_series(1, 1000000000)", timeout_ms: 200 },
    });
    expect(res.status).toBe(408);
    expect(res.body).toMatchObject({ code: "query_timeout", timeout_ms: 200 });
  });

  it("answers 409 with seed 004's message when the session has no database", async () => {
    const user = await h.newUser();
    const res = await h.call("POST", "/query", { token: user.token, json: { sql: "SELECT 1" } });
    expect(res.status).toBe(409);
    expect(res.body.detail).toBe("No database connected for this session. Please connect a database first.");
  });

  it("answers 404 saying what to do when the session's connection was deleted since", async () => {
    const user = await h.newConnectedUser();
    const [connection] = (await h.call("GET", "/databases", { token: user.token })).body;
    expect((await h.call("DELETE", `/databases/${connection.id}`, { token: user.token })).status).toBe(204);
    const res = await h.call("POST", "/query", { token: user.token, json: { sql: "SELECT 1" } });
    expect(res.status).toBe(404);
    expect(res.body.detail).toBe(`This session's database connection ${connection.id} no longer exists (it was deleted): connect another with POST /databases/connect_db/{id}`);
  });

  it("reports a session whose connection was deleted since as not connected, wherever it shows", async () => {
    const user = await h.newConnectedUser();
    const [connection] = (await h.call("GET", "/databases", { token: user.token })).body;
    expect((await h.call("GET", "/databases/session-status", { token: user.token })).body).toMatchObject({ database_connected: true, db_id: connection.id });
    expect((await h.call("DELETE", `/databases/${connection.id}`, { token: user.token })).status).toBe(204);
    expect((await h.call("GET", "/databases/session-status", { token: user.token })).body).toMatchObject({ database_connected: false, db_id: null });
    expect((await h.call("GET", "/health/session", { token: user.token })).body.database_connected).toBe(false);
    const info = await h.call("GET", `/databases/session-info/${user.sessionId}`, { token: user.token });
    expect(info.body).toMatchObject({ database_connected: false, db_session_created_at: null });
    expect(info.body.session_data).toMatchObject({ status: "idle", db_id: null, connection_string: null, db_schema: null });
  });

  it("answers 404 for another user's connection or session", async () => {
    const alice = await userWith(chinook);
    const bob = await h.newUser();
    for (const [path, body] of [
      ["/query", { sql: "SELECT 1", connection_id: alice.dbId }],
      ["/query", { sql: "SELECT 1", session_id: alice.sessionId }],
      [`/databases/${alice.dbId}/query`, { sql: "SELECT 1" }],
      [`/databases/${alice.dbId}/schema`, undefined],
    ] as const) {
      const res = body ? await h.call("POST", path, { token: bob.token, json: body }) : await h.call("GET", path, { token: bob.token });
      expect(res.status, path).toBe(404);
    }
  });
});

describe("GET /databases/{id}/schema", () => {
  it("returns tables, columns, keys and estimated rows, and refreshes after a change", async () => {
    const user = await userWith(pgTarget);
    const res = await h.call("GET", `/databases/${user.dbId}/schema`, { token: user.token });
    expect(res.status).toBe(200);
    const items = res.body.tables.find((t: { name: string }) => t.name === "items");
    expect(items).toMatchObject({ schema: "public", kind: "table", primary_key: ["id"], columns: [{ name: "id", type: "integer", nullable: false }, { name: "name", type: "text", nullable: true }] });

    const db = pgTarget.body.database_name as string;
    const { pgAdmin } = await import("../support/services.js");
    await pgAdmin("CREATE TABLE added_later (x int)", db);
    const cached = await h.call("GET", `/databases/${user.dbId}/schema`, { token: user.token });
    expect(cached.body.tables.map((t: { name: string }) => t.name)).not.toContain("added_later");
    const refreshed = await h.call("POST", `/databases/${user.dbId}/schema/refresh`, { token: user.token });
    expect(refreshed.body.tables.map((t: { name: string }) => t.name)).toContain("added_later");
    await pgAdmin("DROP TABLE added_later", db);
  });
});

describe("budgets", () => {
  it("refuses with 429 and Retry-After once a connection's queries-per-minute budget is spent", async () => {
    const tight = await createHarness({ env: { CONNECTION_QUERIES_PER_MINUTE: "3" } });
    try {
      const target = await sqliteTarget(tight.sqliteRoot);
      const user = await tight.newUser();
      const id = (await tight.call("POST", "/databases/add_db_connection", { token: user.token, json: target.body })).body.db_connection.id;
      const statuses = [];
      for (let i = 0; i < 4; i++) statuses.push((await tight.call("POST", `/databases/${id}/query`, { token: user.token, json: { sql: "SELECT 1" } })));
      expect(statuses.map((r) => r.status)).toEqual([200, 200, 200, 429]);
      expect(statuses[3]!.body.code).toBe("budget_exceeded");
      expect(Number(statuses[3]!.headers.get("retry-after"))).toBeGreaterThan(0);
    } finally {
      await tight.close();
    }
  });
});

describe("two instances sharing Redis and PostgreSQL", () => {
  it("serves a session connected on one instance from the other", async () => {
    const second = await createHarness({ shareWith: h });
    try {
      const user = await userWith(chinook);
      await h.call("POST", `/databases/connect_db/${user.dbId}`, { token: user.token });
      const res = await second.call("POST", "/query", { token: user.token, json: { sql: "SELECT count(*) FROM Album" } });
      expect(res.status).toBe(200);
      expect(res.body.data.rows).toEqual([[347]]);
      expect(second.deps.connectors.has(user.dbId)).toBe(true);
      await second.call("POST", "/databases/disconnect-session", { token: user.token });
      expect((await h.call("GET", "/databases/session-status", { token: user.token })).body.database_connected).toBe(false);

      // The other way round, with the session's state already read (and kept) by the second.
      await h.call("POST", `/databases/connect_db/${user.dbId}`, { token: user.token });
      const query = () => second.call("POST", "/query", { token: user.token, json: { sql: "SELECT 1" } });
      await expect.poll(async () => (await query()).status).toBe(200);
      await h.call("POST", "/databases/disconnect-session", { token: user.token });
      await expect.poll(async () => (await query()).status, { timeout: 1000 }).toBe(409);
    } finally {
      await second.close();
    }
  });

  it("shows every instance the schema one read anew (a refresh, connect_db), not the one it kept", async () => {
    const second = await createHarness({ shareWith: h });
    try {
      const user = await h.newUser();
      const name = `${uniqueName("ddl")}.sqlite`;
      const file = new Database(path.join(h.sqliteRoot, name));
      file.exec("CREATE TABLE old_t (id INTEGER PRIMARY KEY)");
      const id = (await h.call("POST", "/databases/add_db_connection", { token: user.token, json: { db_type: "sqlite", database_name: name } })).body.db_connection.id;
      const tablesOn = async (instance: Harness) => (await instance.call("GET", `/databases/${id}/schema`, { token: user.token })).body.tables.map((t: { name: string }) => t.name);
      expect(await tablesOn(second)).toEqual(["old_t"]); // kept by the second instance
      file.exec("DROP TABLE old_t; CREATE TABLE new_t (id INTEGER PRIMARY KEY)");
      expect((await h.call("POST", `/databases/${id}/schema/refresh`, { token: user.token })).body.tables.map((t: { name: string }) => t.name)).toEqual(["new_t"]);
      await expect.poll(() => tablesOn(second)).toEqual(["new_t"]);
      file.exec("CREATE TABLE newer_t (id INTEGER PRIMARY KEY)");
      await h.call("POST", `/databases/connect_db/${id}`, { token: user.token });
      await expect.poll(() => tablesOn(second)).toEqual(["new_t", "newer_t"]);
      file.close();
    } finally {
      await second.close();
    }
  });

  it("evicts on every instance a connection updated or deleted on one", async () => {
    const second = await createHarness({ shareWith: h });
    try {
      const user = await userWith(chinook);
      const other = `${uniqueName("other")}.sqlite`;
      const file = new Database(path.join(h.sqliteRoot, other));
      file.exec("CREATE TABLE Album (AlbumId INTEGER PRIMARY KEY); INSERT INTO Album VALUES (1);");
      file.close();
      const count = () => second.call("POST", `/databases/${user.dbId}/query`, { token: user.token, json: { sql: "SELECT count(*) FROM Album" } });
      expect((await count()).body.data.rows).toEqual([[347]]);
      expect(second.deps.connectors.has(user.dbId)).toBe(true);

      const updated = await h.call("PUT", `/databases/${user.dbId}`, { token: user.token, json: { database_name: other } });
      expect(updated.status).toBe(200);
      await expect.poll(() => second.deps.connectors.has(user.dbId)).toBe(false);
      expect((await count()).body.data.rows).toEqual([[1]]);

      expect((await h.call("DELETE", `/databases/${user.dbId}`, { token: user.token })).status).toBe(204);
      await expect.poll(() => second.deps.connectors.has(user.dbId)).toBe(false);
      expect((await count()).status).toBe(404);
    } finally {
      await second.close();
    }
  });
});
