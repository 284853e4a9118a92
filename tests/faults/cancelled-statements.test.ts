// A statement whose caller went away is stopped at the database (red-team pass): a client that
// hangs up on /query, /ask or a manual run, and an /ask past ASK_TIMEOUT_MS. Before, the statement ran on to its own
// timeout (QUERY_TIMEOUT_MS, 30 s by default) holding one of the database's few slots, so asking
// and hanging up again and again starved every other user of that database.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { startFakeOpenAI, type FakeOpenAI, type FakeReply } from "../support/fake-openai.js";
import { createHarness, type Harness } from "../support/harness.js";
import { addConnection, monitorTableUnchecked, pgMonitoredDb, type MonitoredDb } from "../support/monitoring.js";
import { mariaAdmin, pgAdmin } from "../support/services.js";
import { mariaTarget, postgresTarget, sqliteTarget, type TargetDb } from "../support/targets.js";

/** Far longer than the test: if it is not stopped, it is still running when looked for. */
const SLOW = {
  postgresql: (n: number) => `SELECT count(*) AS n FROM generate_series(1, ${n}) a, generate_series(1, 1000) b`,
  mysql: (n: number) => `SELECT sum(a.seq % 7) AS n FROM seq_1_to_${n} a, seq_1_to_1000 b`,
  sqlite: (n: number) => `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${n}) SELECT count(*) AS n FROM c`,
};
/** PostgreSQL notices a closed connection within a second (client_connection_check_interval). */
const STOPPED_WITHIN_MS = 5_000;

const replies: FakeReply[] = [];
let fake: FakeOpenAI;
let h: Harness;
const targets: TargetDb[] = [];
const monitored: MonitoredDb[] = [];

beforeAll(async () => {
  fake = await startFakeOpenAI(Array.from({ length: 20 }, () => () => replies.shift() ?? { content: "done" }));
  h = await createHarness({ env: { OPENAI_BASE_URL: fake.baseUrl, OPENAI_MODEL: "fake-model", ASK_TIMEOUT_MS: "1500", QUERY_TIMEOUT_MS: "60000" } });
});
afterAll(async () => {
  await h?.close();
  await fake?.close();
  for (const target of targets) await target.drop();
  for (const db of monitored) await db.drop();
});

/** A new user with a connection to `target`; its id. */
async function connected(target: TargetDb) {
  targets.push(target);
  const user = await h.newUser();
  const added = await h.call("POST", "/databases/add_db_connection", { token: user.token, json: target.body });
  expect(added.status, added.text).toBe(201);
  return { user, id: added.body.db_connection.id as number };
}

/** Whether a statement containing `marker` still runs, as the server itself says. */
const stillRunning = {
  postgresql: async (marker: string) =>
    (await pgAdmin<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1", "test", [`%${marker}%`]))[0]!.n !==
    "0",
  mysql: async (marker: string) =>
    (await mariaAdmin<{ n: number }>(`SELECT count(*) AS n FROM information_schema.processlist WHERE command = 'Query' AND info LIKE '%${marker}%' AND info NOT LIKE '%processlist%'`))[0]!.n > 0,
};

async function until(condition: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await condition()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return condition();
}

describe("POST /databases/{id}/query when the client hangs up", () => {
  it.each(["postgresql", "mysql"] as const)("stops the statement at the database (%s)", async (dialect) => {
    const { user, id } = await connected(dialect === "postgresql" ? await postgresTarget() : await mariaTarget());
    const { url } = await h.serve();
    // A number no other statement has: what the server's list of statements is searched for.
    const n = 900_000_000 + Math.floor(Math.random() * 99_999_999);
    const hangUp = new AbortController();
    const asked = fetch(`${url}/databases/${id}/query`, {
      method: "POST",
      headers: { authorization: `Bearer ${user.token}`, "content-type": "application/json" },
      body: JSON.stringify({ sql: SLOW[dialect](n) }),
      signal: hangUp.signal,
    }).catch(() => "hung up");
    expect(await until(() => stillRunning[dialect](String(n)), 10_000), "the statement never started").toBe(true);
    hangUp.abort();
    expect(await asked).toBe("hung up");
    expect(await until(async () => !(await stillRunning[dialect](String(n))), STOPPED_WITHIN_MS), "still running after the client hung up").toBe(true);
  }, 60_000);

  it("stops the statement's SQLite process, so the next statement runs at once", async () => {
    const { user, id } = await connected(await sqliteTarget(h.sqliteRoot));
    const { url } = await h.serve();
    // Its process started first, so that the slow statement is running when the client hangs up.
    expect((await h.call("POST", `/databases/${id}/query`, { token: user.token, json: { sql: "SELECT 1" } })).status).toBe(200);
    const hangUp = new AbortController();
    const asked = fetch(`${url}/databases/${id}/query`, {
      method: "POST",
      headers: { authorization: `Bearer ${user.token}`, "content-type": "application/json" },
      body: JSON.stringify({ sql: SLOW.sqlite(2_000_000_000) }),
      signal: hangUp.signal,
    }).catch(() => "hung up");
    await new Promise((r) => setTimeout(r, 500));
    hangUp.abort();
    expect(await asked).toBe("hung up");
    // One statement at a time per SQLite connection: behind the first, this one would wait
    // out its 60 s.
    const next = await h.call("POST", `/databases/${id}/query`, { token: user.token, json: { sql: "SELECT count(*) AS n FROM Album", timeout_ms: 10_000 } });
    expect(next.status, next.text).toBe(200);
    expect(next.body.data.rows).toEqual([[347]]);
  }, 60_000);
});

describe("POST /api/tables/{id}/run when the client hangs up", () => {
  it("stops the check's statement at the database and records no outcome", async () => {
    const db = await pgMonitoredDb();
    monitored.push(db);
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, db.body);
    const n = 900_000_000 + Math.floor(Math.random() * 99_999_999);
    const table = await monitorTableUnchecked(h, user, { connection_id: connectionId, table: "events" }, [{ kind: "custom_sql", name: "slow", sql: SLOW.postgresql(n), max: 0 }]);
    const { url } = await h.serve();
    const hangUp = new AbortController();
    const asked = fetch(`${url}/api/tables/${table.id}/run`, { method: "POST", headers: { authorization: `Bearer ${user.token}` }, signal: hangUp.signal }).catch(() => "hung up");
    expect(await until(() => stillRunning.postgresql(String(n)), 10_000), "the statement never started").toBe(true);
    hangUp.abort();
    expect(await asked).toBe("hung up");
    expect(await until(async () => !(await stillRunning.postgresql(String(n))), STOPPED_WITHIN_MS), "still running after the client hung up").toBe(true);
    expect((await h.call("GET", `/api/tables/${table.id}/runs`, { token: user.token })).body).toEqual([]);
  }, 60_000);
});

describe("POST /ask past ASK_TIMEOUT_MS", () => {
  it("stops the statement it was running at the database", async () => {
    const { user, id } = await connected(await postgresTarget());
    expect((await h.call("POST", `/databases/connect_db/${id}`, { token: user.token })).status).toBe(200);
    const n = 900_000_000 + Math.floor(Math.random() * 99_999_999);
    replies.push({ toolCalls: [{ name: "run_query", args: { sql: SLOW.postgresql(n) } }] });
    const res = await h.call("POST", "/ask", { token: user.token, json: { question: "How many?" } });
    expect(res.status, res.text).toBe(504);
    expect(await until(async () => !(await stillRunning.postgresql(String(n))), STOPPED_WITHIN_MS), "still running after the answer").toBe(true);
  }, 60_000);
});

describe("POST /ask when the client hangs up", () => {
  it("stops the question and logs it as the client's leaving (499, info), not an unhandled error", async () => {
    const user = await h.newConnectedUser();
    const { url } = await h.serve();
    const from = h.logs.length;
    const asked = fake.requests.length;
    replies.push({ fail: "hang" });
    const hangUp = new AbortController();
    const answer = fetch(`${url}/ask`, {
      method: "POST",
      headers: { authorization: `Bearer ${user.token}`, "content-type": "application/json" },
      body: JSON.stringify({ question: "How many?" }),
      signal: hangUp.signal,
    }).catch(() => "hung up");
    expect(await until(async () => fake.requests.length > asked, 5_000), "the model was never asked").toBe(true);
    hangUp.abort();
    expect(await answer).toBe("hung up");
    const lines = () => h.logs.slice(from).flatMap((chunk) => chunk.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>));
    expect(await until(async () => lines().some((l) => l.msg === "request" && l.path === "/ask"), 5_000), "the request was never logged").toBe(true);
    expect(lines().filter((l) => l.msg === "request" && l.path === "/ask")).toEqual([expect.objectContaining({ status: 499, level: 30 })]);
    expect(lines().filter((l) => Number(l.level) >= 50)).toEqual([]);
  }, 30_000);
});

describe("a query whose caller went away while it waited for a slot", () => {
  it("leaves the connector's count of running statements right, so closing it still waits for the next one", async () => {
    const { GuardedConnector } = await import("../../src/connectors/guarded.js");
    const { createBudget } = await import("../../src/connectors/budget.js");
    const { createSqliteDriver } = await import("../../src/connectors/drivers/sqlite.js");
    const target = await sqliteTarget(h.sqliteRoot);
    const driver = await createSqliteDriver({
      dialect: "sqlite", host: "", port: 0, database: String(target.body.database_name), username: "", password: "", ssl: false,
      filePath: `${h.sqliteRoot}/${target.body.database_name}`, connectTimeoutMs: 10_000,
    });
    const budget = createBudget({ concurrency: 1, perMinute: 1000, maxWaiting: 5, maxWaitMs: 30_000 });
    const connector = new GuardedConnector(1, 1, "sqlite:test", driver, { maxRows: 10, maxBytes: 1_000_000, timeoutMs: 30_000 }, budget);
    // The slot is taken; the second caller waits for it, and goes away meanwhile.
    const holding = connector.query(SLOW.sqlite(3_000_000), { timeoutMs: 10_000 });
    const gone = new AbortController();
    const waiting = connector.query("SELECT 1", { signal: gone.signal });
    gone.abort();
    await expect(waiting).rejects.toMatchObject({ code: "query_cancelled" });
    await holding;
    // Closing waits for what runs on the connector: this statement finishes rather than fail.
    const running = connector.query(SLOW.sqlite(1_000_000), { timeoutMs: 10_000 });
    await new Promise((r) => setTimeout(r, 100));
    await connector.close();
    await expect(running).resolves.toMatchObject({ row_count: 1 });
  }, 60_000);
});

describe("a MySQL statement stopped for its caller", () => {
  it("lets its connection go: a KILL QUERY still on its way would stop the connection's next statement", async () => {
    const { createMysqlDriver } = await import("../../src/connectors/drivers/mysql.js");
    const target = await mariaTarget();
    targets.push(target);
    const driver = await createMysqlDriver(
      {
        dialect: "mysql", host: String(target.body.host), port: Number(target.body.port), database: String(target.body.database_name),
        username: String(target.body.username), password: target.password, ssl: false, connectTimeoutMs: 10_000,
      },
      { maxConnections: 1, idleTimeoutMs: 60_000 },
    );
    try {
      const limits = { maxRows: 10, maxBytes: 1_000_000, timeoutMs: 30_000 };
      const idOf = async () => (await driver.query("SELECT CONNECTION_ID() AS id", limits)).rows[0]![0];
      const before = await idOf();
      const gone = new AbortController();
      const stopped = driver.query(SLOW.mysql(900_000_000), { ...limits, signal: gone.signal });
      await new Promise((r) => setTimeout(r, 300));
      gone.abort();
      await expect(stopped).rejects.toMatchObject({ code: "query_cancelled" });
      expect(await idOf()).not.toBe(before);
    } finally {
      await driver.close();
    }
  }, 60_000);
});
