// The connection registry over HTTP, against real PostgreSQL, MariaDB and SQLite: connections
// are proven before saving, passwords never come back, and failures are clear 4xx answers.

import { createServer, type Server, type Socket } from "node:net";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

import { eq } from "drizzle-orm";

import { dbConnections } from "../../src/store/schema.js";
import { createHarness, type Harness } from "../support/harness.js";
import { mariaTarget, postgresTarget, sqliteTarget, type TargetDb } from "../support/targets.js";
import { MARIADB, PG } from "../support/services.js";
import { startTcpRelay } from "../support/tcp-relay.js";

let h: Harness;
const targets: Record<string, TargetDb> = {};

beforeAll(async () => {
  h = await createHarness({ env: { CONNECT_TIMEOUT_MS: "1000" } });
  targets.postgresql = await postgresTarget();
  targets.mysql = await mariaTarget();
  targets.sqlite = await sqliteTarget(h.sqliteRoot);
});
afterAll(async () => {
  for (const t of Object.values(targets)) await t.drop();
  await h?.close();
});

describe.each(["postgresql", "mysql", "sqlite"])("connection CRUD on %s", (dialect) => {
  it("adds, lists, reads, renames, tests and deletes a connection", async () => {
    const user = await h.newUser();
    const target = targets[dialect]!;
    const added = await h.call("POST", "/databases/add_db_connection", { token: user.token, json: { ...target.body, name: "Shop" } });
    expect(added.status).toBe(201);
    expect(added.body.message).toBe("Database added successfully");
    const conn = added.body.db_connection;
    expect(conn).toMatchObject({ id: expect.any(Number), name: "Shop", db_type: dialect, owner_id: user.id, database_name: target.body.database_name });
    expect(conn).not.toHaveProperty("db_password");
    expect(added.text).not.toContain(target.password || "\u0000never");

    const list = await h.call("GET", "/databases", { token: user.token });
    expect(list.body).toEqual([conn]);
    expect((await h.call("GET", "/api/connections", { token: user.token })).body).toEqual([conn]);
    expect((await h.call("GET", `/databases/${conn.id}`, { token: user.token })).body).toEqual(conn);

    const renamed = await h.call("PUT", `/databases/${conn.id}`, { token: user.token, json: { name: "Renamed" } });
    expect(renamed.status).toBe(200);
    expect(renamed.body).toMatchObject({ id: conn.id, name: "Renamed" });

    const tested = await h.call("POST", `/databases/${conn.id}/test`, { token: user.token });
    expect(tested.status).toBe(200);
    expect(tested.body).toMatchObject({ ok: true, latency_ms: expect.any(Number), server_version: expect.any(String), replica: false });
    expect(typeof tested.body.read_only).toBe("boolean");
    if (dialect === "sqlite") expect(tested.body.read_only).toBe(true);

    expect((await h.call("DELETE", `/databases/${conn.id}`, { token: user.token })).status).toBe(204);
    expect((await h.call("GET", `/databases/${conn.id}`, { token: user.token })).status).toBe(404);
    expect((await h.call("DELETE", `/databases/${conn.id}`, { token: user.token })).status).toBe(404);
  });
});

describe("POST /databases/add_db_connection failures", () => {
  let silent: Server;
  let silentPort: number;
  let resetting: Server;
  let resettingPort: number;
  const openSockets = new Set<Socket>();
  beforeAll(async () => {
    // Resets every connection it accepts.
    resetting = createServer((socket) => socket.resetAndDestroy());
    await new Promise<void>((resolve) => resetting.listen(0, "127.0.0.1", resolve));
    resettingPort = (resetting.address() as { port: number }).port;
    // Accepts TCP connections and never answers: the connect timeout must end the wait.
    silent = createServer((socket) => {
      socket.resume(); // read and drop what clients send, so their closing is seen
      openSockets.add(socket);
      socket.on("close", () => openSockets.delete(socket));
    });
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    silentPort = (silent.address() as { port: number }).port;
  });
  afterAll(async () => {
    for (const socket of openSockets) socket.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
    await new Promise<void>((resolve) => resetting.close(() => resolve()));
  });

  it("answers 400 with the server's reason for a wrong MariaDB password, saving nothing", async () => {
    const user = await h.newUser();
    const res = await h.call("POST", "/databases/add_db_connection", { token: user.token, json: { ...targets.mysql!.body, db_password: "wrong-password" } });
    expect(res.status).toBe(400);
    expect(res.body.code).toBe("connection_failed");
    expect(res.body.detail).toMatch(/access denied/i);
    expect(res.text).not.toContain("wrong-password");
    expect((await h.call("GET", "/databases", { token: user.token })).body).toEqual([]);
  });

  it.each([
    ["an unknown PostgreSQL role", { db_type: "postgresql", host: PG.host, port: PG.port, database_name: "test", username: "no_such_role_xyz" }, /no_such_role_xyz/],
    ["an unknown PostgreSQL database", { db_type: "postgresql", host: PG.host, port: PG.port, database_name: "no_such_db_xyz", username: "postgres" }, /no_such_db_xyz/],
    ["an unknown MariaDB database", { db_type: "mysql", host: MARIADB.host, port: MARIADB.port, database_name: "no_such_db_xyz", username: "root" }, /no_such_db_xyz|unknown database/i],
    ["a closed port", { db_type: "postgresql", host: "127.0.0.1", port: 1, database_name: "x", username: "u" }, /127\.0\.0\.1:1/],
    ["a missing SQLite file", { db_type: "sqlite", database_name: "missing.sqlite" }, /missing\.sqlite/],
    ["MariaDB's port given as PostgreSQL's", { db_type: "postgresql", host: MARIADB.host, port: MARIADB.port, database_name: "x", username: "u" }, /127\.0\.0\.1:3306/],
    ["PostgreSQL's port given as MariaDB's", { db_type: "mysql", host: PG.host, port: PG.port, database_name: "x", username: "u" }, /127\.0\.0\.1:5432/],
  ])("answers 400 for %s", async (_, body, reason) => {
    const user = await h.newUser();
    const res = await h.call("POST", "/databases/add_db_connection", { token: user.token, json: body });
    expect(res.status).toBe(400);
    expect(res.body.code).toBe("connection_failed");
    expect(res.body.detail).toMatch(reason);
  });

  it.each(["postgresql", "mysql"])("names the server that reset a %s connection", async (dbType) => {
    const user = await h.newUser();
    const res = await h.call("POST", "/databases/add_db_connection", {
      token: user.token,
      json: { db_type: dbType, host: "127.0.0.1", port: resettingPort, database_name: "x", username: "u", db_password: "p" },
    });
    expect(res.status).toBe(400);
    expect(res.body.code).toBe("connection_failed");
    expect(res.body.detail).toContain(`127.0.0.1:${resettingPort}`);
  });

  it.each(["postgresql", "mysql"])("gives up on a silent %s host within the connect timeout", async (dbType) => {
    const user = await h.newUser();
    const started = Date.now();
    const res = await h.call("POST", "/databases/add_db_connection", {
      token: user.token,
      json: { db_type: dbType, host: "127.0.0.1", port: silentPort, database_name: "x", username: "u", db_password: "p" },
    });
    expect(res.status).toBe(400);
    expect(res.body.code).toBe("connection_failed");
    expect(res.body.detail).toMatch(/within 1000 ms|timed out/i);
    expect(Date.now() - started).toBeLessThan(1000 + 2500);
    // The abandoned socket is closed, not leaked.
    for (let i = 0; i < 50 && openSockets.size > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(openSockets.size).toBe(0);
  });

  it.each([
    [{ db_type: "oracle", database_name: "x" }, "body.db_type"],
    [{ db_type: "postgresql", database_name: "x" }, "body.host"],
    [{ db_type: "postgresql", host: "h", username: "u", database_name: "x", port: 70000 }, "body.port"],
    [{ db_type: "postgresql", host: "h", username: "u", database_name: "x", port: "5432" }, "body.port"],
    [{ db_type: "sqlite" }, "body.database_name"],
    [{ db_type: "sqlite", database_name: "../secrets.json" }, "body.database_name"],
    [{ db_type: "sqlite", database_name: "/etc/passwd" }, "body.database_name"],
  ])("answers 422 for %j naming %s", async (body, path) => {
    const user = await h.newUser();
    const res = await h.call("POST", "/databases/add_db_connection", { token: user.token, json: body });
    expect(res.status).toBe(422);
    expect(res.body.errors.map((e: { path: string }) => e.path)).toContain(path);
  });

  it("refuses a SQLite link that leads out of SQLITE_ROOT", async () => {
    const user = await h.newUser();
    const outside = path.join(h.config.dataDir, "outside");
    mkdirSync(outside, { recursive: true });
    writeFileSync(path.join(outside, "x.sqlite"), "");
    symlinkSync(path.join(outside, "x.sqlite"), path.join(h.sqliteRoot, "link.sqlite"));
    const res = await h.call("POST", "/databases/add_db_connection", { token: user.token, json: { db_type: "sqlite", database_name: "link.sqlite" } });
    expect(res.status).toBe(422);
    expect(res.body.detail).toMatch(/outside SQLITE_ROOT/);
  });

  it("refuses an owner_id other than the caller's", async () => {
    const user = await h.newUser();
    const res = await h.call("POST", "/databases/add_db_connection", { token: user.token, json: { ...targets.sqlite!.body, owner_id: user.id + 1000 } });
    expect(res.status).toBe(403);
    const own = await h.call("POST", "/databases/add_db_connection", { token: user.token, json: { ...targets.sqlite!.body, owner_id: user.id } });
    expect(own.status).toBe(201);
  });

  it("requires a token", async () => {
    const res = await h.call("POST", "/databases/add_db_connection", { json: targets.sqlite!.body });
    expect(res.status).toBe(401);
  });
});

describe("PUT /databases/{id}", () => {
  it("proves new settings before saving them and keeps the old ones on failure", async () => {
    const user = await h.newUser();
    const added = await h.call("POST", "/databases/add_db_connection", { token: user.token, json: targets.mysql!.body });
    const id = added.body.db_connection.id;
    const bad = await h.call("PUT", `/databases/${id}`, { token: user.token, json: { db_password: "not-it" } });
    expect(bad.status).toBe(400);
    // The stored password still works.
    expect((await h.call("POST", `/databases/${id}/test`, { token: user.token })).status).toBe(200);
    const moved = await h.call("PUT", `/databases/${id}`, { token: user.token, json: targets.postgresql!.body });
    expect(moved.status).toBe(200);
    expect(moved.body).toMatchObject({ db_type: "postgresql", port: PG.port });
    expect((await h.call("POST", `/databases/${id}/test`, { token: user.token })).body.server_version).toMatch(/^1\d/);
  });

  it("refuses (409) settings proven against the connection as it was, once another change of it was saved meanwhile", async () => {
    // Room for the slow proof below to connect on a loaded machine (this file's 1 s is for
    // the failures it expects).
    const patient = await createHarness({ env: { CONNECT_TIMEOUT_MS: "10000" } });
    const user = await patient.newUser();
    const id = (await patient.call("POST", "/databases/add_db_connection", { token: user.token, json: targets.postgresql!.body })).body.db_connection.id;
    const other = await postgresTarget();
    // The same server on a slow link: proving the new port takes a few slow round trips (five
    // to connect, 1.5 s), while the other change is saved.
    const relay = await startTcpRelay({ host: PG.host, port: PG.port });
    relay.delay(300);
    try {
      const slow = patient.call("PUT", `/databases/${id}`, { token: user.token, json: { port: relay.port, db_password: targets.postgresql!.password } });
      await vi.waitFor(() => expect(relay.accepted).toBeGreaterThan(0), { timeout: 5000, interval: 20 });
      const moved = await patient.call("PUT", `/databases/${id}`, { token: user.token, json: { database_name: other.body.database_name } });
      expect(moved.status).toBe(200);
      const res = await slow;
      expect(res.status).toBe(409);
      expect(res.body.detail).toBe(`Database connection ${id} was changed by another request while this change was checked; read it again and send this change anew`);
      expect((await patient.call("GET", `/databases/${id}`, { token: user.token })).body).toMatchObject({ port: PG.port, database_name: other.body.database_name });
    } finally {
      await relay.close();
      await other.drop();
      await patient.close();
    }
  });

  it("asks for the host and user a move from SQLite to a server needs, naming them, and keeps the file", async () => {
    const user = await h.newUser();
    const id = (await h.call("POST", "/databases/add_db_connection", { token: user.token, json: targets.sqlite!.body })).body.db_connection.id;
    const { host, port, database_name, db_password } = targets.mysql!.body as Record<string, unknown>;
    for (const [body, missing] of [
      [{ db_type: "mysql", host, port, database_name, db_password }, ["username"]],
      [{ db_type: "postgresql", database_name: "x", db_password: "p" }, ["host", "username"]],
    ] as const) {
      const res = await h.call("PUT", `/databases/${id}`, { token: user.token, json: body });
      expect(res.status, res.text).toBe(422);
      expect(res.body.errors).toEqual(missing.map((field) => ({ path: `body.${field}`, message: `required for ${body.db_type}` })));
    }
    expect((await h.call("GET", `/databases/${id}`, { token: user.token })).body).toMatchObject({ db_type: "sqlite", database_name: targets.sqlite!.body.database_name });
  });

  it.each(["information_schema", "PERFORMANCE_SCHEMA"])("refuses %s as a MySQL connection's database: its unqualified session_status reads what other statements left", async (database_name) => {
    const user = await h.newUser();
    const res = await h.call("POST", "/databases/add_db_connection", { token: user.token, json: { ...targets.mysql!.body, database_name } });
    expect(res.status, res.text).toBe(422);
    expect(res.body.errors).toEqual([{ path: "body.database_name", message: expect.stringContaining("the server's catalog") }]);
  });

  it("answers a connection saved to information_schema before that was refused with 409 naming it and how to change it", async () => {
    const user = await h.newUser();
    const id = (await h.call("POST", "/databases/add_db_connection", { token: user.token, json: targets.mysql!.body })).body.db_connection.id as number;
    await h.deps.store.db.update(dbConnections).set({ databaseName: "information_schema" }).where(eq(dbConnections.id, id));
    h.deps.connectors.evictHere(id);
    for (const [method, url, json] of [
      ["POST", `/databases/${id}/query`, { sql: "SELECT 1" }],
      ["POST", `/databases/${id}/test`, undefined],
    ] as const) {
      const res = await h.call(method, url, { token: user.token, json });
      expect(res.status, `${url}: ${res.text}`).toBe(409);
      expect(res.body.detail).toMatch(new RegExp(`^Database connection ${id} cannot be used as saved \\(database_name: information_schema is the server's catalog.*change it with PUT /databases/${id}$`));
    }
  });
});

describe("ownership", () => {
  it("answers 404 to another user on every route of a connection", async () => {
    const alice = await h.newUser();
    const bob = await h.newUser();
    const added = await h.call("POST", "/databases/add_db_connection", { token: alice.token, json: targets.sqlite!.body });
    const id = added.body.db_connection.id;
    const attempts = [
      h.call("GET", `/databases/${id}`, { token: bob.token }),
      h.call("PUT", `/databases/${id}`, { token: bob.token, json: { name: "mine now" } }),
      h.call("POST", `/databases/${id}/test`, { token: bob.token }),
      h.call("DELETE", `/databases/${id}`, { token: bob.token }),
    ];
    for (const res of await Promise.all(attempts)) {
      expect(res.status).toBe(404);
      expect(res.body).toEqual({ detail: "Database connection not found", code: "not_found" });
    }
    expect((await h.call("GET", "/databases", { token: bob.token })).body).toEqual([]);
    expect((await h.call("GET", `/databases/${id}`, { token: alice.token })).body.name).not.toBe("mine now");
  });
});

describe("seed 000: /api/v1/instances", () => {
  it("manages a connection with seed 000's field names", async () => {
    const user = await h.newUser();
    const pg = targets.postgresql!.body;
    const created = await h.call("POST", "/api/v1/instances", {
      token: user.token,
      json: { name: "My PostgreSQL DB", db_type: "postgresql", host: pg.host, port: pg.port, database: pg.database_name, username: pg.username, password: targets.postgresql!.password },
    });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({
      id: expect.any(Number),
      name: "My PostgreSQL DB",
      db_type: "postgresql",
      host: pg.host,
      port: pg.port,
      database: pg.database_name,
      username: pg.username,
      created_at: expect.any(String),
      updated_at: expect.any(String),
    });
    const id = created.body.id;
    expect((await h.call("GET", "/api/v1/instances", { token: user.token })).body).toEqual([created.body]);
    expect((await h.call("PUT", `/api/v1/instances/${id}`, { token: user.token, json: { name: "Updated DB Name" } })).body.name).toBe("Updated DB Name");
    expect((await h.call("POST", `/api/v1/instances/${id}/test`, { token: user.token })).body.ok).toBe(true);
    const query = await h.call("POST", `/api/v1/instances/${id}/query`, { token: user.token, json: { sql: "SELECT COUNT(*) AS n FROM items" } });
    expect(query.body).toMatchObject({ status: "ok", error: null, data: { columns: ["n"], row_count: 1 } });
    expect((await h.call("DELETE", `/api/v1/instances/${id}`, { token: user.token })).status).toBe(204);
    expect((await h.call("GET", `/api/v1/instances/${id}`, { token: user.token })).status).toBe(404);
  });

  it("names seed 000's fields in the errors the connection service finds", async () => {
    const user = await h.newUser();
    const outside = await h.call("POST", "/api/v1/instances", { token: user.token, json: { name: "Out", db_type: "sqlite", database: "../escape.sqlite" } });
    expect(outside.status).toBe(422);
    expect(outside.body.errors.map((e: { path: string }) => e.path)).toEqual(["body.database"]);
    expect(outside.body.detail).not.toContain("database_name");
    const withPassword = await h.call("POST", "/api/v1/instances", {
      token: user.token,
      json: { name: "Pw", db_type: "sqlite", database: targets.sqlite!.body.database_name, password: "x" },
    });
    expect(withPassword.status).toBe(422);
    expect(withPassword.body.errors).toEqual([{ path: "body.password", message: "not taken for sqlite: a SQLite connection names only a file, in database" }]);
  });
});

describe("a SQLite connection", () => {
  it("refuses the fields only a server takes instead of dropping them (ssl: true was stored as false)", async () => {
    const user = await h.newUser();
    const sqlite = targets.sqlite!.body;
    const res = await h.call("POST", "/databases/add_db_connection", {
      token: user.token,
      json: { ...sqlite, host: "db.example", port: 5432, username: "u", db_password: "p", ssl: true },
    });
    expect(res.status).toBe(422);
    expect(res.body.errors.map((e: { path: string }) => e.path)).toEqual(["body.host", "body.port", "body.username", "body.db_password", "body.ssl"]);
    expect((await h.call("GET", "/databases", { token: user.token })).body).toEqual([]);
    // The empty values a form sends for them are no request for anything.
    const blank = await h.call("POST", "/databases/add_db_connection", { token: user.token, json: { ...sqlite, username: "", db_password: "", ssl: false } });
    expect(blank.status, blank.text).toBe(201);
    const changed = await h.call("PUT", `/databases/${blank.body.db_connection.id}`, { token: user.token, json: { ssl: true } });
    expect(changed.status).toBe(422);
    expect(changed.body.errors).toEqual([{ path: "body.ssl", message: "not taken for sqlite: a SQLite connection names only a file, in database_name" }]);
  });
});
