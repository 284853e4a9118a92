// Threat: one account (or a script of theirs gone wrong) filling the metadata store and the
// scheduler: connections, monitored tables, channels and API keys without end. Each is capped
// per user (USER_MAX_*): past the cap, 409 quota_exceeded naming the cap and what to do; other
// users are not affected; deleting one makes room; requests at once cannot pass the cap together.
// Runs asked for, each a row per check, are limited per minute (MONITOR_MANUAL_RUNS_PER_MINUTE).

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { insertApiKey } from "../../src/store/api-keys.js";
import { insertWithinQuota } from "../../src/store/quotas.js";
import { createHarness, type Harness } from "../support/harness.js";
import { sqliteMonitoredDb, type MonitoredDb } from "../support/monitoring.js";
import { sqliteTarget } from "../support/targets.js";

const CAP = 2;

let h: Harness;
let target: MonitoredDb;

beforeAll(async () => {
  h = await createHarness({
    env: {
      USER_MAX_CONNECTIONS: String(CAP),
      USER_MAX_MONITORED_TABLES: String(CAP),
      USER_MAX_CHANNELS: String(CAP),
      USER_MAX_API_KEYS: String(CAP),
      // Channels are never sent to here: no alert opens.
      WEBHOOK_ALLOW_PRIVATE: "true",
      CONNECTION_TESTS_PER_MINUTE: "1000",
    },
  });
  target = await sqliteMonitoredDb(h.sqliteRoot);
  // Three more tables, so a user can ask to monitor more than the cap.
  for (const name of ["a", "b", "c"]) await target.exec(`CREATE TABLE ${name} (id integer primary key, ts text)`);
});
afterAll(async () => {
  await target?.drop();
  await h?.close();
});

type User = Awaited<ReturnType<Harness["newUser"]>>;

/** Each kind: where it is listed and created, how the i-th is made, where one is deleted, and the cap's setting. */
const kinds: [string, string, (user: User, i: number) => Promise<Record<string, unknown>>, string, string][] = [
  ["connections", "/api/connections", async () => target.body, "/databases", "USER_MAX_CONNECTIONS"],
  [
    "monitored tables",
    "/api/tables",
    async (user, i) => ({ connection_id: await connectionOf(user), table: ["events", "a", "b", "c"][i], checks: [{ kind: "schema_drift" }] }),
    "/api/tables",
    "USER_MAX_MONITORED_TABLES",
  ],
  ["channels", "/api/channels", async (_, i) => ({ kind: "webhook", url: `http://127.0.0.1:9/hook-${i}` }), "/api/channels", "USER_MAX_CHANNELS"],
  ["API keys", "/api/keys", async (_, i) => ({ name: `key ${i}`, scopes: ["query"] }), "/api/keys", "USER_MAX_API_KEYS"],
];

const connections = new Map<number, number>();
async function connectionOf(user: User): Promise<number> {
  let id = connections.get(user.id);
  if (id === undefined) {
    const res = await h.call("POST", "/api/connections", { token: user.token, json: target.body });
    expect(res.status, res.text).toBe(201);
    id = res.body.id as number;
    connections.set(user.id, id);
  }
  return id;
}

async function listed(user: User, url: string): Promise<{ id: number }[]> {
  const res = await h.call("GET", url, { token: user.token });
  expect(res.status).toBe(200);
  return res.body;
}

describe.each(kinds)("%s per user", (what, url, bodyOf, deleteUrl, setting) => {
  it(`refuses one past ${setting} with 409 quota_exceeded, leaves others' alone, and takes one again after a delete`, async () => {
    const user = await h.newUser();
    for (let i = 0; i < CAP; i++) {
      const res = await h.call("POST", url, { token: user.token, json: await bodyOf(user, i) });
      expect(res.status, res.text).toBe(201);
    }
    const over = await h.call("POST", url, { token: user.token, json: await bodyOf(user, CAP) });
    expect(over.status, over.text).toBe(409);
    expect(over.body).toMatchObject({ code: "quota_exceeded", limit: CAP, detail: expect.stringContaining(`${what} allowed (${CAP} per user)`) });
    const kept = await listed(user, url);
    expect(kept).toHaveLength(CAP);

    // Another user's count is their own.
    const other = await h.newUser();
    expect((await h.call("POST", url, { token: other.token, json: await bodyOf(other, 0) })).status).toBe(201);

    // Deleting one makes room for one.
    expect((await h.call("DELETE", `${deleteUrl}/${kept[0]!.id}`, { token: user.token })).status).toBe(204);
    if (what === "connections") connections.delete(user.id);
    const again = await h.call("POST", url, { token: user.token, json: await bodyOf(user, CAP) });
    expect(again.status, again.text).toBe(201);
  });

  it("lets no more than the cap through when the requests come at once", async () => {
    const user = await h.newUser();
    const bodies = [];
    for (let i = 0; i < 8; i++) bodies.push(await bodyOf(user, i % 4));
    const answers = await Promise.all(bodies.map((json) => h.call("POST", url, { token: user.token, json })));
    const statuses = answers.map((a) => a.status);
    expect(statuses.filter((s) => s === 201)).toHaveLength(CAP);
    expect(statuses.filter((s) => s !== 201).every((s) => s === 409)).toBe(true);
    expect(await listed(user, url)).toHaveLength(CAP);
  });
});

describe("check runs an hour per user", () => {
  const LIMIT = 100;
  let hq: Harness;
  let db: MonitoredDb;
  beforeAll(async () => {
    hq = await createHarness({ env: { USER_MAX_CHECK_RUNS_PER_HOUR: String(LIMIT) } });
    db = await sqliteMonitoredDb(hq.sqliteRoot);
  });
  afterAll(async () => {
    await db?.drop();
    await hq?.close();
  });
  /** One schema_drift check every `interval` seconds: 3600 / interval runs an hour. */
  const tableBody = (connectionId: number, interval: number, extra: Record<string, unknown> = {}) => ({
    connection_id: connectionId,
    table: "events",
    interval_seconds: interval,
    checks: [{ kind: "schema_drift" }],
    ...extra,
  });
  const userWithConnection = async () => {
    const user = await hq.newUser();
    const res = await hq.call("POST", "/api/connections", { token: user.token, json: db.body });
    expect(res.status, res.text).toBe(201);
    return { user, connectionId: res.body.id as number };
  };

  it("refuses a table that would take the user's enabled tables past USER_MAX_CHECK_RUNS_PER_HOUR, with 409 saying what to do", async () => {
    const { user, connectionId } = await userWithConnection();
    const first = await hq.call("POST", "/api/tables", { token: user.token, json: tableBody(connectionId, 60) });
    expect(first.status, first.text).toBe(201);
    const refused = await hq.call("POST", "/api/tables", { token: user.token, json: tableBody(connectionId, 60) });
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ code: "quota_exceeded", limit: LIMIT });
    expect(refused.body.detail).toBe(
      `Your enabled monitored tables would run 120 checks an hour, past the ${LIMIT} allowed per user (USER_MAX_CHECK_RUNS_PER_HOUR): run them less often, with fewer checks, or disable some`,
    );
    // Less often fits; a paused table runs nothing; another user has their own allowance.
    expect((await hq.call("POST", "/api/tables", { token: user.token, json: tableBody(connectionId, 3600) })).status).toBe(201);
    expect((await hq.call("POST", "/api/tables", { token: user.token, json: tableBody(connectionId, 60, { enabled: false }) })).status).toBe(201);
    const other = await userWithConnection();
    expect((await hq.call("POST", "/api/tables", { token: other.user.token, json: tableBody(other.connectionId, 60) })).status).toBe(201);
  });

  it("counts a change that runs a table more: more often, more checks, or enabled again", async () => {
    const { user, connectionId } = await userWithConnection();
    const busy = (await hq.call("POST", "/api/tables", { token: user.token, json: tableBody(connectionId, 60) })).body.id as number;
    const quiet = (await hq.call("POST", "/api/tables", { token: user.token, json: tableBody(connectionId, 3600) })).body.id as number;
    const patch = (id: number, json: Record<string, unknown>) => hq.call("PATCH", `/api/tables/${id}`, { token: user.token, json });
    expect((await patch(quiet, { interval_seconds: 60 })).status).toBe(409);
    expect((await patch(quiet, { checks: [{ kind: "schema_drift" }, { kind: "volume" }] })).status).toBe(200);
    expect((await patch(busy, { enabled: false })).status).toBe(200);
    expect((await patch(quiet, { interval_seconds: 120 })).status).toBe(200);
    const again = await patch(busy, { enabled: true });
    expect(again.status).toBe(409);
    expect(again.body.code).toBe("quota_exceeded");
    // A table's own change counts it once, as it will be (80 an hour, not 60 + 80).
    expect((await patch(quiet, { interval_seconds: 90 })).status).toBe(200);
  });

  it("lets two changes of one table sent at once not pass it together", async () => {
    for (let i = 0; i < 3; i++) {
      const { user, connectionId } = await userWithConnection();
      const id = (await hq.call("POST", "/api/tables", { token: user.token, json: tableBody(connectionId, 3600) })).body.id as number;
      const patch = (json: Record<string, unknown>) => hq.call("PATCH", `/api/tables/${id}`, { token: user.token, json });
      // Each alone fits (2 an hour, or 60); together, 120.
      const statuses = (await Promise.all([patch({ checks: [{ kind: "schema_drift" }, { kind: "volume" }] }), patch({ interval_seconds: 60 })])).map((r) => r.status);
      expect(statuses.sort()).toEqual([200, 409]);
      const table = (await hq.call("GET", `/api/tables/${id}`, { token: user.token })).body;
      expect((table.checks.length * 3600) / table.interval_seconds).toBeLessThanOrEqual(LIMIT);
    }
  });

  it("lets no more through than fit when the requests come at once", async () => {
    const { user, connectionId } = await userWithConnection();
    const answers = await Promise.all(Array.from({ length: 4 }, () => hq.call("POST", "/api/tables", { token: user.token, json: tableBody(connectionId, 60) })));
    expect(answers.map((a) => a.status).sort()).toEqual([201, 409, 409, 409]);
  });
});

describe("an insert whose account was deleted meanwhile", () => {
  it("is 404 naming what went, not a 500 from the store's foreign key", async () => {
    const user = await h.newUser();
    expect((await h.call("DELETE", "/users/me", { token: user.token, json: { password: user.password } })).status).toBe(204);
    // What add_db_connection, POST /api/keys and the rest do once their checks and probes are over.
    const inserting = insertWithinQuota(h.deps.store.db, h.config.quotas, user.id, "apiKeys", (tx) =>
      insertApiKey(tx, { ownerId: user.id, name: "late", secretHash: "x", prefix: "pulse_late", lastFour: "late", scopes: ["query"], connectionIds: null, expiresAt: null }),
    );
    await expect(inserting).rejects.toMatchObject({ code: "not_found", message: expect.stringContaining("deleted meanwhile") });
  });
});

describe("the cap on connections", () => {
  it("refuses before connecting: a user at the cap learns of it, not of a database that cannot be reached", async () => {
    const user = await h.newUser();
    for (let i = 0; i < CAP; i++) {
      const res = await h.call("POST", "/databases/add_db_connection", { token: user.token, json: (await sqliteTarget(h.sqliteRoot)).body });
      expect(res.status, res.text).toBe(201);
    }
    const unreachable = { db_type: "sqlite", database_name: "no-such-file.sqlite" };
    const res = await h.call("POST", "/databases/add_db_connection", { token: user.token, json: unreachable });
    expect(res.status, res.text).toBe(409);
    expect(res.body.code).toBe("quota_exceeded");
  });
});

describe("the cap on monitored tables over MCP", () => {
  it("answers create_monitor past the cap with a quota_exceeded tool error", async () => {
    const user = await h.newUser();
    const connectionId = await connectionOf(user);
    const call = (table: string) =>
      h.call("POST", "/mcp", {
        token: user.token,
        headers: { accept: "application/json, text/event-stream" },
        json: { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "create_monitor", arguments: { connection_id: connectionId, table, checks: [{ kind: "schema_drift" }] } } },
      });
    for (const table of ["a", "b"]) expect((await call(table)).body.result.isError, table).toBeFalsy();
    const over = await call("c");
    expect(over.status).toBe(200);
    expect(over.body.result.isError).toBe(true);
    expect(over.body.result.structuredContent).toMatchObject({ code: "quota_exceeded", limit: CAP });
  });
});

describe("a table's checks", () => {
  it("hold at most 20,000 characters of custom SQL together (422 naming the field), so tables cannot carry gigabytes", async () => {
    const user = await h.newUser();
    const connectionId = await connectionOf(user);
    // Three checks of 8,000 characters: each within its own limit, too much together.
    const padded = (i: number) => ({ kind: "custom_sql", name: `c${i}`, sql: `SELECT ${i} /* ${"x".repeat(7_980)} */`, max: 10 });
    const res = await h.call("POST", "/api/tables", { token: user.token, json: { connection_id: connectionId, table: "events", checks: [0, 1, 2].map(padded) } });
    expect(res.status, res.text).toBe(422);
    expect(res.body.errors).toEqual([{ path: "body.checks", message: expect.stringContaining("20000 characters of SQL together") }]);
    const two = await h.call("POST", "/api/tables", { token: user.token, json: { connection_id: connectionId, table: "events", checks: [0, 1].map(padded) } });
    expect(two.status, two.text).toBe(201);
    const grown = await h.call("PATCH", `/api/tables/${two.body.id}`, { token: user.token, json: { checks: [0, 1, 2].map(padded) } });
    expect(grown.status).toBe(422);
  });
});

describe("runs asked for", () => {
  let limited: Harness;
  beforeAll(async () => {
    limited = await createHarness({ env: { MONITOR_MANUAL_RUNS_PER_MINUTE: "3" } });
  });
  afterAll(async () => limited?.close());

  it("are limited per user per minute (each records a row per check), with Retry-After, others' untouched", async () => {
    const run = async (user: User) => {
      const db = await sqliteMonitoredDb(limited.sqliteRoot);
      const connection = await limited.call("POST", "/api/connections", { token: user.token, json: db.body });
      const table = await limited.call("POST", "/api/tables", { token: user.token, json: { connection_id: connection.body.id, table: "events", checks: [{ kind: "schema_drift" }] } });
      expect(table.status, table.text).toBe(201);
      return () => limited.call("POST", `/api/tables/${table.body.id}/run`, { token: user.token });
    };
    const user = await limited.newUser();
    const runOwn = await run(user);
    for (let i = 0; i < 3; i++) expect((await runOwn()).status).toBe(200);
    const refused = await runOwn();
    expect(refused.status).toBe(429);
    expect(refused.body).toMatchObject({ code: "rate_limited", detail: expect.stringContaining("MONITOR_MANUAL_RUNS_PER_MINUTE") });
    expect(refused.headers.get("retry-after")).toBeTruthy();
    const runs = await limited.call("GET", `/api/tables/${(await limited.call("GET", "/api/tables", { token: user.token })).body[0].id}/runs`, { token: user.token });
    expect(runs.body).toHaveLength(3);

    const other = await limited.newUser();
    expect((await (await run(other))()).status).toBe(200);
  });
});

describe("the caps on the embedded store (PGlite)", () => {
  let embedded: Harness;
  beforeAll(async () => {
    embedded = await createHarness({ store: "pglite", env: { USER_MAX_API_KEYS: String(CAP) } });
  });
  afterAll(async () => embedded?.close());

  it("holds for requests at once as on PostgreSQL", async () => {
    const user = await embedded.newUser();
    const answers = await Promise.all(
      Array.from({ length: 6 }, (_, i) => embedded.call("POST", "/api/keys", { token: user.token, json: { name: `key ${i}`, scopes: ["query"] } })),
    );
    expect(answers.map((a) => a.status).sort()).toEqual([201, 201, 409, 409, 409, 409]);
  });
});
