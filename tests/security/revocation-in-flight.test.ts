// Threat: work let in before its credential was revoked goes on sending statements after. An
// /ask (its agent's next query), an MCP call, a manual run of a table's checks and a save's dry
// runs are checked once, as their request arrives, then run for seconds. Once a logout, a
// password change, a deleted key or a deleted user has answered, on this instance or another,
// none of them sends another statement to the customer database: the model's next reply is
// held, or a check's statement waits on a lock the test holds, while the test revokes.

import { and, eq, like } from "drizzle-orm";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

import { runTableChecks } from "../../src/monitoring/run-table.js";
import { getMonitoredTable } from "../../src/store/monitoring-tables.js";
import { auditRecords } from "../../src/store/schema.js";
import { startQueuedFakeOpenAI, type FakeOpenAI, type FakeStep } from "../support/fake-openai.js";
import { createHarness, type Harness } from "../support/harness.js";
import { addConnection, monitorTableUnchecked, pgMonitoredDb, type MonitoredDb } from "../support/monitoring.js";
import { pgAdmin, pgUrl } from "../support/services.js";

const MARKER = "after_revocation";
const BEFORE_SQL = "SELECT 1 AS before_revocation";
const MARKER_SQL = `SELECT 2 AS ${MARKER}`;

/** Replies the next model request gets, in order; tests fill it. */
const replies: FakeStep[] = [];
let fake: FakeOpenAI;
let a: Harness;
let b: Harness;
const dbs: MonitoredDb[] = [];

beforeAll(async () => {
  fake = await startQueuedFakeOpenAI(replies);
  // A long recheck age: only the revocation itself can stop the work.
  // One statement at a time per database: a second waits for the first's slot.
  const env = {
    TOKEN_RECHECK_SECONDS: "3600",
    OPENAI_BASE_URL: fake.baseUrl,
    OPENAI_MODEL: "fake-model",
    OPENAI_TIMEOUT_MS: "10000",
    ASK_PER_MINUTE: "1000",
    CONNECTION_MAX_CONCURRENCY: "1",
  };
  a = await createHarness({ sessions: "redis", env });
  b = await createHarness({ shareWith: a, env });
});
afterAll(async () => {
  await b?.close();
  await a?.close();
  await fake?.close();
  for (const db of dbs) await db.drop();
});

/** The agent queries once, then asks the model again: that reply (which queries MARKER_SQL)
 * is held until `release`. `held` resolves once the model has been asked for it. */
function scriptHeldAsk() {
  let release!: () => void;
  let asked!: () => void;
  const held = new Promise<void>((resolve) => (asked = resolve));
  const released = new Promise<void>((resolve) => (release = resolve));
  replies.length = 0;
  replies.push({ toolCalls: [{ name: "run_query", args: { sql: BEFORE_SQL } }] });
  replies.push(async () => {
    asked();
    await released;
    return { toolCalls: [{ name: "run_query", args: { sql: MARKER_SQL } }] };
  });
  replies.push({ content: "done" });
  return { held, release };
}

/** Statements of `ownerId` recorded as run, whose text has `text` in it. */
async function ran(ownerId: number, text: string): Promise<number> {
  await a.deps.audit!.flush();
  await b.deps.audit!.flush();
  const rows = await a.deps.store.db
    .select({ id: auditRecords.id })
    .from(auditRecords)
    .where(and(eq(auditRecords.ownerId, ownerId), like(auditRecords.sql, `%${text}%`), eq(auditRecords.outcome, "ok")));
  return rows.length;
}

async function newKey(h: Harness, token: string, scopes: string[]): Promise<{ key: string; id: number }> {
  const res = await h.call("POST", "/api/keys", { token, json: { name: "in flight", scopes } });
  expect(res.status, res.text).toBe(201);
  return { key: res.body.key as string, id: res.body.id as number };
}

/** A user with a connection to a fresh copy of Chinook on SQLite, their session connected to it. */
async function userWithChinook() {
  const user = await a.newConnectedUser();
  const status = await a.call("GET", "/databases/session-status", { token: user.token });
  return { ...user, connectionId: status.body.db_id as number };
}

describe("an /ask under way", () => {
  it("sends no statement after its login logs out on another instance, and answers 401", async () => {
    const user = await userWithChinook();
    const { held, release } = scriptHeldAsk();
    const asking = b.call("POST", "/ask", { token: user.token, json: { question: "anything" } });
    await held;
    expect((await a.call("POST", "/logout", { token: user.token })).status).toBe(204);
    release();
    const res = await asking;
    expect(res.status, res.text).toBe(401);
    expect(res.body).toMatchObject({ code: "unauthorized", detail: "Token has been revoked; log in again" });
    expect(await ran(user.id, BEFORE_SQL)).toBe(1);
    expect(await ran(user.id, MARKER)).toBe(0);
  });

  it("sends no statement after its user's password changes, and answers 401", async () => {
    const user = await userWithChinook();
    const { held, release } = scriptHeldAsk();
    const asking = a.call("POST", "/ask", { token: user.token, json: { question: "anything" } });
    await held;
    const changed = await b.call("PUT", "/users/me/password", { token: user.token, json: { current_password: user.password, new_password: "a brand new passphrase" } });
    expect(changed.status, changed.text).toBe(200);
    release();
    expect((await asking).status).toBe(401);
    expect(await ran(user.id, MARKER)).toBe(0);
  });

  it("as an event stream, ends with a 401 error event once its API key is deleted", async () => {
    const user = await userWithChinook();
    const { key, id } = await newKey(a, user.token, ["ask", "query"]);
    // A key asks on its own session.
    expect((await a.call("POST", `/databases/connect_db/${user.connectionId}`, { token: key })).status).toBe(200);
    const { held, release } = scriptHeldAsk();
    const asking = a.call("POST", "/ask", { token: key, headers: { accept: "text/event-stream" }, json: { question: "anything" } });
    await held;
    expect((await b.call("DELETE", `/api/keys/${id}`, { token: user.token })).status).toBe(204);
    release();
    const res = await asking;
    expect(res.status).toBe(200);
    expect(res.text).toMatch(/event: error\ndata: \{[^\n]*"code":"unauthorized"[^\n]*"status":401/);
    expect(res.text).not.toContain("event: result");
    expect(await ran(user.id, MARKER)).toBe(0);
  });

  it("of an API key goes on through its user's password change, which leaves keys standing", async () => {
    const user = await userWithChinook();
    const { key } = await newKey(a, user.token, ["ask", "query"]);
    expect((await a.call("POST", `/databases/connect_db/${user.connectionId}`, { token: key })).status).toBe(200);
    const { held, release } = scriptHeldAsk();
    const asking = b.call("POST", "/ask", { token: key, json: { question: "anything" } });
    await held;
    const changed = await a.call("PUT", "/users/me/password", { token: user.token, json: { current_password: user.password, new_password: "a brand new passphrase" } });
    expect(changed.status, changed.text).toBe(200);
    // The instance running the ask asks the store about the key again: give it the time.
    await new Promise((resolve) => setTimeout(resolve, 300));
    release();
    const res = await asking;
    expect(res.status, res.text).toBe(200);
    expect(await ran(user.id, MARKER)).toBe(1);
  });

  it("over MCP, is cancelled once its API key is deleted, and answered 401", async () => {
    const user = await userWithChinook();
    const { key, id } = await newKey(a, user.token, ["ask"]);
    const { held, release } = scriptHeldAsk();
    const asking = b.call("POST", "/mcp", {
      token: key,
      headers: { accept: "application/json, text/event-stream" },
      json: { jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: "ask", arguments: { connection_id: user.connectionId, question: "anything" } } },
    });
    await held;
    expect((await a.call("DELETE", `/api/keys/${id}`, { token: user.token })).status).toBe(204);
    release();
    const res = await asking;
    expect(res.status, res.text).toBe(401);
    // A key has no login to go back to.
    expect(res.body).toMatchObject({ code: "unauthorized", detail: "API key has been revoked; create a new one", jsonrpc: "2.0", id: 7, error: { code: -32000 } });
    expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect(await ran(user.id, MARKER)).toBe(0);
  });
});

/** A POST to `url` on instance A whose JSON body is sent in two parts: the first now, the rest
 * once `between` (a revocation) has answered. */
async function revokedWhileSending(url: string, headers: Record<string, string>, first: string, rest: string, between: () => Promise<void>): Promise<Response> {
  let push!: (text: string | null) => void;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      push = (text) => (text === null ? controller.close() : controller.enqueue(new TextEncoder().encode(text)));
    },
  });
  const asked = a.app.request(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body, duplex: "half" } as RequestInit);
  push(first);
  await new Promise((resolve) => setTimeout(resolve, 200));
  await between();
  push(rest);
  push(null);
  return asked;
}

describe("a request let in before its credential's revocation", () => {
  it("runs no statement when the revocation came while its body was still arriving", async () => {
    const user = await userWithChinook();
    const { key, id } = await newKey(a, user.token, ["query"]);
    const res = await revokedWhileSending(`/databases/${user.connectionId}/query`, { authorization: `Bearer ${key}` }, `{"sql": "SELECT 4242 AS ${MARKER}`, `"}`, async () => {
      expect((await a.call("DELETE", `/api/keys/${id}`, { token: user.token })).status).toBe(204);
    });
    expect(res.status, await res.clone().text()).toBe(401);
    expect(await ran(user.id, MARKER)).toBe(0);
  });
});

describe("an MCP call whose key is deleted while its body is still arriving", () => {
  it("is answered 401 with its JSON-RPC id, and runs nothing", async () => {
    const user = await userWithChinook();
    const { key, id } = await newKey(a, user.token, ["query"]);
    const res = await revokedWhileSending(
      "/mcp",
      { authorization: `Bearer ${key}`, accept: "application/json, text/event-stream" },
      `{"jsonrpc": "2.0", "id": 41, "method": "tools/call", "params": {"name": "run_query", "arguments": {"connection_id": ${user.connectionId}, "sql": "SELECT 4242 AS ${MARKER}"`,
      "}}}",
      async () => {
        expect((await a.call("DELETE", `/api/keys/${id}`, { token: user.token })).status).toBe(204);
      },
    );
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ code: "unauthorized", id: 41 });
    expect(await ran(user.id, MARKER)).toBe(0);
  });
});

describe("a request whose credential is read from the store while it is revoked", () => {
  it("runs no statement: the read's answer may predate the revocation", async () => {
    const user = await userWithChinook();
    const { key, id } = await newKey(a, user.token, ["query"]);
    // The key's first use reads the store; its answer is held until the key is deleted.
    const verify = a.deps.apiKeys.verify.bind(a.deps.apiKeys);
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let read!: () => void;
    const wasRead = new Promise<void>((resolve) => (read = resolve));
    a.deps.apiKeys.verify = async (secret, gate) => {
      const verified = await verify(secret, gate);
      read();
      await held;
      return verified;
    };
    try {
      const asked = a.call("POST", `/databases/${user.connectionId}/query`, { token: key, json: { sql: `SELECT 4242 AS ${MARKER}` } });
      await wasRead;
      a.deps.apiKeys.verify = verify;
      expect((await a.call("DELETE", `/api/keys/${id}`, { token: user.token })).status).toBe(204);
      release();
      expect((await asked).status).toBe(401);
      expect(await ran(user.id, MARKER)).toBe(0);
    } finally {
      a.deps.apiKeys.verify = verify;
    }
  });
});

describe("monitoring under way", () => {
  /** A monitored PostgreSQL database whose `events` the test can lock: a check's statement on
   * it then waits until the lock goes. */
  async function lockableDb() {
    const db = await pgMonitoredDb();
    dbs.push(db);
    const locker = new pg.Client({ connectionString: pgUrl(db.body.database_name as string) });
    await locker.connect();
    const waiting = async () => {
      const [row] = await pgAdmin<{ n: string }>(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock' AND query LIKE '%events%'",
        "postgres",
        [db.body.database_name],
      );
      return Number(row!.n);
    };
    return {
      db,
      lock: async () => void (await locker.query("BEGIN; LOCK TABLE events IN ACCESS EXCLUSIVE MODE")),
      unlock: async () => void (await locker.query("COMMIT")),
      /** Resolves once a statement of Pulse's waits on the lock. */
      blocked: () => vi.waitFor(async () => expect(await waiting()).toBeGreaterThan(0), { timeout: 10_000, interval: 50 }),
      close: () => locker.end(),
    };
  }

  const checks = [
    { kind: "custom_sql", name: "first", sql: "SELECT count(*) AS n FROM events", max: 1000 },
    { kind: "custom_sql", name: "second", sql: `SELECT count(*) AS ${MARKER} FROM events`, max: 1000 },
  ];

  it("a /query waiting for its database's slot when its key is deleted never runs", async () => {
    const user = await a.newUser();
    const { db, lock, unlock, blocked, close } = await lockableDb();
    const connectionId = (await a.call("POST", "/databases/add_db_connection", { token: user.token, json: db.body })).body.db_connection.id as number;
    const { key, id } = await newKey(a, user.token, ["query"]);
    await lock();
    try {
      // The login's statement takes the database's one slot, and waits on the lock.
      const first = a.call("POST", `/databases/${connectionId}/query`, { token: user.token, json: { sql: "SELECT count(*) AS n FROM events" } });
      await blocked();
      const waiting = a.call("POST", `/databases/${connectionId}/query`, { token: key, json: { sql: `SELECT count(*) AS ${MARKER} FROM events` } });
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect((await b.call("DELETE", `/api/keys/${id}`, { token: user.token })).status).toBe(204);
      await new Promise((resolve) => setTimeout(resolve, 200));
      await unlock();
      expect((await first).status).toBe(200);
      const res = await waiting;
      expect(res.status, res.text).toBe(401);
      expect(await ran(user.id, MARKER)).toBe(0);
    } finally {
      await close();
    }
  });

  it("a manual run stops once the key that asked for it is deleted: no further check, nothing recorded", async () => {
    const user = await a.newUser();
    const { db, lock, unlock, blocked, close } = await lockableDb();
    const connectionId = await addConnection(a, user.token, db.body);
    const table = await monitorTableUnchecked(a, user, { connection_id: connectionId, table: "events" }, checks as never);
    const { key, id } = await newKey(a, user.token, ["monitoring:write", "monitoring:read", "query"]);
    await lock();
    try {
      const running = b.call("POST", `/api/tables/${table.id}/run`, { token: key });
      await blocked();
      expect((await a.call("DELETE", `/api/keys/${id}`, { token: user.token })).status).toBe(204);
      // Unrevoked, the run would go on to its second check once the lock goes.
      await new Promise((resolve) => setTimeout(resolve, 300));
      await unlock();
      const res = await running;
      expect(res.status, res.text).toBe(401);
      expect(await ran(user.id, MARKER)).toBe(0);
      const runs = await a.call("GET", `/api/tables/${table.id}/runs`, { token: user.token });
      expect(runs.status).toBe(200);
      expect(runs.body).toEqual([]);
    } finally {
      await close();
    }
  });

  it("a save whose dry runs outlast its key's deletion saves nothing", async () => {
    const user = await a.newUser();
    const { db, lock, unlock, blocked, close } = await lockableDb();
    const connectionId = await addConnection(a, user.token, db.body);
    const { key, id } = await newKey(a, user.token, ["monitoring:write", "monitoring:read", "query"]);
    await lock();
    try {
      const saving = a.call("POST", "/api/tables", { token: key, json: { connection_id: connectionId, table: "events", checks } });
      await blocked();
      expect((await b.call("DELETE", `/api/keys/${id}`, { token: user.token })).status).toBe(204);
      await new Promise((resolve) => setTimeout(resolve, 300));
      await unlock();
      expect((await saving).status).toBe(401);
      expect((await a.call("GET", "/api/tables", { token: user.token })).body).toEqual([]);
      expect(await ran(user.id, MARKER)).toBe(0);
    } finally {
      await close();
    }
  });

  it("a scheduled run whose user is deleted meanwhile ends quietly, its outcomes dropped", async () => {
    const user = await a.newUser();
    const { db, lock, unlock, blocked, close } = await lockableDb();
    const connectionId = await addConnection(a, user.token, db.body);
    const table = await monitorTableUnchecked(a, user, { connection_id: connectionId, table: "events" }, checks as never);
    const row = (await getMonitoredTable(a.deps.store.db, user.id, table.id))!;
    await lock();
    try {
      const running = runTableChecks(a.deps, row, "schedule");
      await blocked();
      expect((await a.call("DELETE", "/users/me", { token: user.token, json: { password: user.password } })).status).toBe(204);
      await unlock();
      const report = await running;
      expect(report.outcomes).toHaveLength(2);
      expect(a.logs.some((line) => line.includes("deleted during its run"))).toBe(true);
    } finally {
      await close();
    }
  });
});
