// Threat: an API key that does more than it was given. A key is refused without its scope, off
// its connections, on another user's things, on the account and key routes, once expired, and
// once revoked on every instance at once; its session and conversations are its own.

import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

import { API_KEY_PREFIX } from "../../src/auth/api-keys.js";
import { startQueuedFakeOpenAI, type FakeOpenAI, type FakeReply } from "../support/fake-openai.js";
import { createHarness, type Harness } from "../support/harness.js";
import { sqliteTarget } from "../support/targets.js";

const SQL = { sql: "SELECT 1 AS one" };
const ALL_SCOPES = ["query", "ask", "monitoring:read", "monitoring:write"];

/** Waits for news another instance hears through Redis: "at once" is "within seconds" (one on a
 * quiet machine; five leave room for a loaded one), far below the hour these instances trust
 * what they verified. */
const soon = (check: () => Promise<void>) => vi.waitFor(check, { timeout: 5000, interval: 20 });

let replies: FakeReply[];
let fake: FakeOpenAI;
let a: Harness;
let b: Harness;
beforeAll(async () => {
  replies = [];
  fake = await startQueuedFakeOpenAI(replies);
  const env = { TOKEN_RECHECK_SECONDS: "3600", OPENAI_BASE_URL: fake.baseUrl, OPENAI_MODEL: "fake-model", OPENAI_TIMEOUT_MS: "5000" };
  a = await createHarness({ sessions: "redis", env });
  b = await createHarness({ shareWith: a, env });
});
afterAll(async () => {
  await b?.close();
  await a?.close();
  await fake?.close();
});

async function newConnection(token: string): Promise<number> {
  const res = await a.call("POST", "/databases/add_db_connection", { token, json: (await sqliteTarget(a.sqliteRoot)).body });
  expect(res.status).toBe(201);
  return res.body.db_connection.id as number;
}

async function createKey(token: string, json: Record<string, unknown>) {
  const res = await a.call("POST", "/api/keys", { token, json: { name: "test key", ...json } });
  expect(res.status, res.text).toBe(201);
  return res.body as { id: number; key: string };
}

/** A user with two connections, and a key for all scopes limited to the first. */
async function limitedKey() {
  const user = await a.newUser();
  const [allowed, other] = [await newConnection(user.token), await newConnection(user.token)];
  const { key, id } = await createKey(user.token, { scopes: ALL_SCOPES, connection_ids: [allowed] });
  return { user, allowed, other, key, id };
}

function expectStatus(res: { status: number; body: { code?: string } }, status: number, code: string, what: string) {
  expect(res.status, what).toBe(status);
  expect(res.body.code, what).toBe(code);
}

describe("authentication", () => {
  it("refuses no token, a bad key and a malformed key with 401", async () => {
    const user = await a.newUser();
    const db = await newConnection(user.token);
    const forged = API_KEY_PREFIX + "A".repeat(43);
    for (const token of [undefined, forged, `${API_KEY_PREFIX}short`, `${API_KEY_PREFIX}${"!".repeat(43)}`]) {
      expectStatus(await a.call("POST", `/databases/${db}/query`, { token, json: SQL }), 401, "unauthorized", String(token));
    }
  });

  it("admits a key with the scope on /query, and on its own session", async () => {
    const { key, allowed } = await limitedKey();
    const byId = await a.call("POST", `/databases/${allowed}/query`, { token: key, json: SQL });
    expect(byId.status).toBe(200);
    expect(byId.body.data.rows).toEqual([[1]]);
    expect((await a.call("POST", "/query", { token: key, json: { ...SQL, connection_id: allowed } })).status).toBe(200);
    // Without connection_id: the key's own session, once connected.
    expectStatus(await a.call("POST", "/query", { token: key, json: SQL }), 409, "no_database_connected", "before connect_db");
    const connected = await a.call("POST", `/databases/connect_db/${allowed}`, { token: key });
    expect(connected.status).toBe(200);
    expect(connected.body.session_id).toMatch(/^key:\d+$/);
    expect((await a.call("POST", "/query", { token: key, json: SQL })).status).toBe(200);
    expect((await a.call("GET", "/databases/session-status", { token: key })).body).toMatchObject({ database_connected: true, db_id: allowed });
  });
});

describe("revocation and expiry", () => {
  it("refuses a key revoked on one instance on the other at once", async () => {
    const user = await a.newUser();
    const db = await newConnection(user.token);
    const { key, id } = await createKey(user.token, { scopes: ["query"] });
    // B has verified the key: it holds it in its cache for an hour.
    expect((await b.call("POST", `/databases/${db}/query`, { token: key, json: SQL })).status).toBe(200);
    expect((await a.call("DELETE", `/api/keys/${id}`, { token: user.token })).status).toBe(204);
    await soon(async () => expectStatus(await b.call("POST", `/databases/${db}/query`, { token: key, json: SQL }), 401, "unauthorized", "on B"));
    expectStatus(await a.call("GET", "/databases", { token: key }), 401, "unauthorized", "on A");
  });

  it("refuses a key once it has expired, on every instance, even one that verified it before", async () => {
    const user = await a.newUser();
    const db = await newConnection(user.token);
    const { key } = await createKey(user.token, { scopes: ["query"], expires_at: new Date(Date.now() + 1500).toISOString() });
    expect((await a.call("POST", `/databases/${db}/query`, { token: key, json: SQL })).status).toBe(200);
    expect((await b.call("POST", `/databases/${db}/query`, { token: key, json: SQL })).status).toBe(200);
    await vi.waitFor(async () => expect((await a.call("GET", "/databases", { token: key })).status).toBe(401), { timeout: 5000, interval: 100 });
    const refused = await b.call("POST", `/databases/${db}/query`, { token: key, json: SQL });
    expectStatus(refused, 401, "unauthorized", "on B");
    expect(refused.body.detail).toMatch(/expired|unknown/);
    // And by an instance that never saw it.
    const fresh = await createHarness({ shareWith: a, sessions: "memory" });
    try {
      expectStatus(await fresh.call("GET", "/databases", { token: key }), 401, "unauthorized", "fresh instance");
    } finally {
      await fresh.close();
    }
  });

  it("refuses the keys of a deleted account on every instance at once", async () => {
    const user = await a.newUser();
    const db = await newConnection(user.token);
    const { key } = await createKey(user.token, { scopes: ["query"] });
    expect((await b.call("POST", `/databases/${db}/query`, { token: key, json: SQL })).status).toBe(200);
    expect((await a.call("DELETE", "/users/me", { token: user.token, json: { password: user.password } })).status).toBe(204);
    await soon(async () => expectStatus(await b.call("GET", "/databases", { token: key }), 401, "unauthorized", "on B"));
  });

  it("keeps keys working across a password change", async () => {
    const user = await a.newUser();
    const { key } = await createKey(user.token, { scopes: ["query"] });
    const changed = await a.call("PUT", "/users/me/password", {
      token: user.token,
      json: { current_password: user.password, new_password: "another long passphrase" },
    });
    expect(changed.status).toBe(200);
    expect((await a.call("GET", "/databases", { token: key })).status).toBe(200);
  });
});

describe("scopes", () => {
  it("refuses every route a scope does not cover with 403", async () => {
    const user = await a.newUser();
    const db = await newConnection(user.token);
    const monitorOnly = (await createKey(user.token, { scopes: ["monitoring:read"] })).key;
    const queryOnly = (await createKey(user.token, { scopes: ["query"] })).key;
    const refusals: [string, string, string, unknown?][] = [
      [monitorOnly, "POST", "/query", { ...SQL, connection_id: db }],
      [monitorOnly, "POST", `/databases/${db}/query`, SQL],
      [monitorOnly, "POST", `/api/v1/instances/${db}/query`, SQL],
      [monitorOnly, "GET", `/databases/${db}/schema`, undefined],
      [monitorOnly, "POST", `/databases/connect_db/${db}`, undefined],
      [monitorOnly, "POST", `/databases/${db}/test`, undefined],
      [monitorOnly, "POST", "/ask", { question: "How many albums?" }],
      [monitorOnly, "POST", "/api/tables", { connection_id: db, table: "Album" }],
      [monitorOnly, "POST", "/api/channels", { kind: "webhook", name: "hook", url: "https://example.com/hook" }],
      [queryOnly, "GET", "/api/tables", undefined],
      [queryOnly, "GET", "/api/alerts", undefined],
      [queryOnly, "GET", "/api/channels", undefined],
      [queryOnly, "POST", "/ask", { question: "How many albums?" }],
    ];
    for (const [key, method, url, json] of refusals) {
      expectStatus(await a.call(method, url, { token: key, json }), 403, "forbidden", `${key === monitorOnly ? "monitoring:read" : "query"} ${method} ${url}`);
    }
    expect((await a.call("GET", "/api/tables", { token: monitorOnly })).status).toBe(200);
    expect((await a.call("GET", `/databases/${db}/schema`, { token: queryOnly })).status).toBe(200);
  });

  it("refuses checks that read values (custom_sql, freshness) to a key without the query scope: they would read what the key may not", async () => {
    const user = await a.newUser();
    const db = await newConnection(user.token);
    const monitoring = (await createKey(user.token, { scopes: ["monitoring:read", "monitoring:write"] })).key;
    const both = (await createKey(user.token, { scopes: ["monitoring:write", "query"] })).key;
    // A text cell read through a check's dry run would be quoted in its 422.
    const sqlCheck = { kind: "custom_sql", name: "leak", sql: "SELECT Name FROM Artist WHERE ArtistId = 1", max: 0 };
    const refused = await a.call("POST", "/api/tables", { token: monitoring, json: { connection_id: db, table: "Artist", checks: [sqlCheck] } });
    expectStatus(refused, 403, "forbidden", "custom_sql without query");
    expect(refused.text).toContain("'query' scope");
    expect(refused.text).not.toContain("AC/DC");
    // The rest of monitoring is the key's to set up, and a custom_sql check with both scopes.
    const made = await a.call("POST", "/api/tables", { token: monitoring, json: { connection_id: db, table: "Artist", checks: [{ kind: "volume" }] } });
    expect(made.status, made.text).toBe(201);
    const patched = await a.call("PATCH", `/api/tables/${made.body.id}`, { token: monitoring, json: { checks: [{ ...sqlCheck, sql: "SELECT length(Name) FROM Artist WHERE ArtistId = 1" }] } });
    expectStatus(patched, 403, "forbidden", "custom_sql by PATCH without query");
    expect((await a.call("GET", `/api/tables/${made.body.id}`, { token: user.token })).body.checks).toEqual([expect.objectContaining({ kind: "volume" })]);
    const withQuery = await a.call("PATCH", `/api/tables/${made.body.id}`, { token: both, json: { checks: [{ ...sqlCheck, sql: "SELECT count(*) FROM Artist" }] } });
    expect(withQuery.status, withQuery.text).toBe(200);
    // freshness reads max() of any column: a text one quoted back, a number shown as a time.
    for (const column of ["Name", "ArtistId"]) {
      const fresh = await a.call("POST", "/api/tables", { token: monitoring, json: { connection_id: db, table: "Artist", checks: [{ kind: "freshness", column }] } });
      expectStatus(fresh, 403, "forbidden", `freshness of ${column} without query`);
      expect(fresh.text).not.toContain("Zeca");
    }
    // The check already there, sent back unchanged beside a change the key may make, is no new read.
    const kept = await a.call("PATCH", `/api/tables/${made.body.id}`, {
      token: monitoring,
      json: { checks: [{ ...sqlCheck, sql: "SELECT count(*) FROM Artist" }, { kind: "volume", min_rows: 1 }] },
    });
    expect(kept.status, kept.text).toBe(200);
    // Kept, but pointed at another table by moving the monitored table: a new read.
    const freshness = await a.call("POST", "/api/tables", { token: user.token, json: { connection_id: db, table: "InvoiceLine", checks: [{ kind: "freshness", column: "UnitPrice" }] } });
    expect(freshness.status, freshness.text).toBe(201);
    const moved = await a.call("PATCH", `/api/tables/${freshness.body.id}`, { token: monitoring, json: { table: "Track" } });
    expectStatus(moved, 403, "forbidden", "a freshness check moved to another table without query");
    expect((await a.call("GET", `/api/tables/${freshness.body.id}`, { token: user.token })).body.table).toBe("InvoiceLine");
  });

  it("refuses the account, key, connection management and audit routes to any key with 403", async () => {
    const user = await a.newUser();
    const db = await newConnection(user.token);
    const { key } = await createKey(user.token, { scopes: ALL_SCOPES });
    const target = (await sqliteTarget(a.sqliteRoot)).body;
    for (const [method, url, json] of [
      ["GET", "/users/me", undefined],
      ["POST", "/logout", undefined],
      ["PUT", "/users/me/password", { current_password: user.password, new_password: "stolen and changed" }],
      ["DELETE", "/users/me", { password: user.password }],
      ["POST", "/databases/add_db_connection", target],
      ["POST", "/api/connections", target],
      ["PUT", `/databases/${db}`, { name: "renamed" }],
      ["DELETE", `/databases/${db}`, undefined],
      ["DELETE", `/api/v1/instances/${db}`, undefined],
      ["GET", "/api/audit", undefined],
      ["POST", "/api/keys", { name: "child", scopes: ["query"] }],
    ] as const) {
      expectStatus(await a.call(method, url, { token: key, json }), 403, "forbidden", `${method} ${url}`);
    }
    // Nothing changed: the user logs in with the same password, the connection is still there.
    expect((await a.call("POST", "/login", { form: { username: user.email, password: user.password } })).status).toBe(200);
    expect((await a.call("GET", `/databases/${db}`, { token: user.token })).body.name).not.toBe("renamed");
  });
});

describe("connections", () => {
  it("refuses a key limited to one connection on another with 403, and lists only its own", async () => {
    const { user, allowed, other, key } = await limitedKey();
    for (const [method, url, json] of [
      ["POST", `/databases/${other}/query`, SQL],
      ["POST", "/query", { ...SQL, connection_id: other }],
      ["POST", `/api/v1/query`, { ...SQL, connection_id: other }],
      ["POST", `/databases/connect_db/${other}`, undefined],
      ["GET", `/databases/${other}/schema`, undefined],
      ["POST", `/databases/${other}/schema/refresh`, undefined],
      ["POST", `/databases/${other}/test`, undefined],
      ["GET", `/databases/${other}`, undefined],
      ["GET", `/api/v1/instances/${other}`, undefined],
      ["POST", "/api/tables", { connection_id: other, table: "Album" }],
      ["GET", "/api/channels", undefined],
    ] as const) {
      expectStatus(await a.call(method, url, { token: key, json }), 403, "forbidden", `${method} ${url}`);
    }
    for (const url of ["/databases", "/api/connections", "/api/v1/instances"]) {
      const listed = await a.call("GET", url, { token: key });
      expect(listed.body.map((c: { id: number }) => c.id), url).toEqual([allowed]);
    }
    // The login sees both.
    expect((await a.call("GET", "/databases", { token: user.token })).body).toHaveLength(2);
  });

  it("keeps a limited key off the monitored tables and alerts of other connections", async () => {
    const { user, allowed, other, key, id: keyId } = await limitedKey();
    /** A table whose check fails (347 albums, at most 0) and opens an alert at once. */
    const table = async (connection_id: number) => {
      const res = await a.call("POST", "/api/tables", {
        token: user.token,
        json: {
          connection_id,
          table: "Album",
          checks: [{ kind: "custom_sql", name: "rows", sql: "SELECT count(*) FROM Album", max: 0 }],
          alert: { open_after: 1 },
        },
      });
      expect(res.status, res.text).toBe(201);
      expect((await a.call("POST", `/api/tables/${res.body.id}/run`, { token: user.token })).status).toBe(200);
      return res.body.id as number;
    };
    const [mine, theirs] = [await table(allowed), await table(other)];
    const alerts = (await a.call("GET", "/api/alerts", { token: user.token })).body as { id: number; table_id: number }[];
    const alertOf = (tableId: number) => alerts.find((alert) => alert.table_id === tableId)!.id;
    expect((await a.call("GET", "/api/alerts", { token: key })).body.map((alert: { id: number }) => alert.id)).toEqual([alertOf(mine)]);
    // The other connection's alert is the newest: a page of one is still the key's own alert.
    expect((await a.call("GET", "/api/alerts?limit=1", { token: key })).body.map((alert: { id: number }) => alert.id)).toEqual([alertOf(mine)]);
    for (const [method, url] of [
      ["GET", `/api/alerts/${alertOf(theirs)}`],
      ["POST", `/api/alerts/${alertOf(theirs)}/ack`],
      ["POST", `/api/alerts/${alertOf(theirs)}/resolve`],
    ] as const) {
      expectStatus(await a.call(method, url, { token: key }), 403, "forbidden", `${method} ${url}`);
    }
    const acked = await a.call("POST", `/api/alerts/${alertOf(mine)}/ack`, { token: key });
    expect(acked.status).toBe(200);
    expect(acked.body.acknowledged_by).toBe(`key:${keyId}`);
    const listed = await a.call("GET", "/api/tables", { token: key });
    expect(listed.body.map((t: { id: number }) => t.id)).toEqual([mine]);
    expect((await a.call("GET", `/api/tables/${mine}`, { token: key })).status).toBe(200);
    for (const [method, url] of [
      ["GET", `/api/tables/${theirs}`],
      ["GET", `/api/tables/${theirs}/runs`],
      ["POST", `/api/tables/${theirs}/run`],
      ["DELETE", `/api/tables/${theirs}`],
    ] as const) {
      expectStatus(await a.call(method, url, { token: key }), 403, "forbidden", `${method} ${url}`);
    }
    expect((await a.call("GET", `/api/tables/${theirs}`, { token: user.token })).status).toBe(200);
  });

  it("refuses a key naming its user's login session: it works on its own only", async () => {
    const user = await a.newConnectedUser();
    const { key } = await createKey(user.token, { scopes: ALL_SCOPES });
    for (const [method, url, json] of [
      ["POST", "/query", { ...SQL, session_id: user.sessionId }],
      ["POST", "/ask", { question: "How many albums?", session_id: user.sessionId }],
      ["GET", `/databases/session-info/${user.sessionId}`, undefined],
    ] as const) {
      expectStatus(await a.call(method, url, { token: key, json }), 403, "forbidden", `${method} ${url}`);
    }
    // The key's own session is not the login's connected one.
    expect((await a.call("GET", "/databases/session-status", { token: key })).body).toMatchObject({ database_connected: false });
  });
});

describe("another user's things", () => {
  it("answers user B's key on user A's connection and monitored table as unknown (404)", async () => {
    const owner = await a.newUser();
    const db = await newConnection(owner.token);
    const tableRes = await a.call("POST", "/api/tables", { token: owner.token, json: { connection_id: db, table: "Album" } });
    expect(tableRes.status).toBe(201);
    const intruder = await a.newUser();
    const { key } = await createKey(intruder.token, { scopes: ALL_SCOPES });
    for (const [method, url, json] of [
      ["POST", `/databases/${db}/query`, SQL],
      ["POST", "/query", { ...SQL, connection_id: db }],
      ["POST", `/databases/connect_db/${db}`, undefined],
      ["GET", `/databases/${db}/schema`, undefined],
      ["GET", `/databases/${db}`, undefined],
      ["GET", `/api/tables/${tableRes.body.id}`, undefined],
      ["POST", `/api/tables/${tableRes.body.id}/run`, undefined],
    ] as const) {
      expectStatus(await a.call(method, url, { token: key, json }), 404, "not_found", `${method} ${url}`);
    }
    expect((await a.call("GET", "/databases", { token: key })).body).toEqual([]);
  });
});

describe("POST /ask with a key", () => {
  it("answers on the key's own session, and keeps its conversation apart from the login's", async () => {
    const user = await a.newConnectedUser();
    const db = (await a.call("GET", "/databases/session-status", { token: user.token })).body.db_id as number;
    const { key } = await createKey(user.token, { scopes: ["query", "ask"], connection_ids: [db] });
    expect((await a.call("POST", `/databases/connect_db/${db}`, { token: key })).status).toBe(200);

    replies.push({ content: "The login's secret answer." });
    const login = await a.call("POST", "/ask", { token: user.token, json: { question: "First question", thread_id: "shared" } });
    expect(login.status, login.text).toBe(200);

    const seen = fake.requests.length;
    replies.push({ content: "Hello from the key." });
    const res = await a.call("POST", "/ask", { token: key, json: { question: "Second question", thread_id: "shared" } });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ answer: "Hello from the key.", thread_id: "shared", session_id: expect.stringMatching(/^key:\d+$/) });
    // The model was not shown the login's conversation of the same thread id.
    expect(JSON.stringify(fake.requests.slice(seen))).not.toContain("The login's secret answer.");
  });
});
