// Nothing a request does stalls the event loop (issue 10, item 5): long statements are parsed
// in worker threads under a time budget, passwords are hashed in worker threads, and refused
// statements spend the connection's budget like reads do. (Sign-up limits: tests/security.)
// The app runs in this process (app.request), so the event-loop delay measured here is the
// service's own.

import { monitorEventLoopDelay } from "node:perf_hooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";
import { uniqueName } from "../support/services.js";
import { mariaTarget, postgresTarget, sqliteTarget, type TargetDb } from "../support/targets.js";

/** ~32 KB, just under the old 32,000-character limit: about a second of parsing each. */
const DEEP_SUM = `SELECT ${"1+".repeat(15_990)}1`;
/** Over the inline threshold (512), cheap to parse: proves the parser threads serve. */
const LONG_READ = `SELECT ${Array.from({ length: 60 }, (_, i) => `${i} AS c${i}`).join(", ")}`;
/** Measured on the shared 2-core machine at load average 12: with parsing and hashing on the
 * event loop, the burst below delayed it by 2.1 s (/health took 2.0 s, or answered 503); off
 * it, by 0.2-0.25 s at most, which is that load's own scheduling noise. Half the 2.1 s: other test
 * files run beside this one. */
const MAX_EVENT_LOOP_DELAY_MS = 1_000;
/** Ten parses of a second or two on two threads, on a machine other test runs load too. */
const SLOW_TEST_MS = 180_000;
/** Share of the time the event loop is busy during a burst of bcrypt work: 1.0 with bcrypt on
 * it, 0.04-0.11 off it (same machine and load). */
const MAX_LOGIN_BURST_UTILIZATION = 0.5;

/** Largest event-loop delay, in ms, while `work` runs. */
async function maxLoopDelayDuring(work: () => Promise<unknown>): Promise<number> {
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  histogram.enable();
  try {
    await work();
  } finally {
    histogram.disable();
  }
  return histogram.max / 1e6;
}

async function addConnection(h: Harness, token: string, target: TargetDb): Promise<number> {
  const added = await h.call("POST", "/databases/add_db_connection", { token, json: target.body });
  expect(added.status, added.text).toBe(201);
  return added.body.db_connection.id as number;
}

describe("a burst of long statements and logins", () => {
  let h: Harness;
  let user: Awaited<ReturnType<Harness["newUser"]>>;
  const targets: TargetDb[] = [];
  const ids: number[] = [];

  beforeAll(async () => {
    // The default bcrypt cost, so that hashing costs what it costs in production.
    h = await createHarness({ env: { BCRYPT_ROUNDS: "10", QUERY_PARSE_TIMEOUT_MS: "60000" } });
    user = await h.newUser();
    targets.push(await postgresTarget(), await mariaTarget(), await sqliteTarget(h.sqliteRoot));
    for (const target of targets) ids.push(await addConnection(h, user.token, target));
  });
  afterAll(async () => {
    await h?.close();
    for (const target of targets) await target.drop();
  });

  it("keeps the event loop and /health responsive while ten 32 KB statements and ten logins run", async () => {
    const statements: number[] = [];
    const logins: number[] = [];
    const health: number[] = [];
    const delay = await maxLoopDelayDuring(async () => {
      let done = false;
      const burst = Promise.all([
        ...Array.from({ length: 10 }, async (_, i) => {
          const res = await h.call("POST", `/databases/${ids[i % ids.length]}/query`, { token: user.token, json: { sql: `${DEEP_SUM} ` } });
          statements.push(res.status);
        }),
        ...Array.from({ length: 10 }, async () => {
          const res = await h.call("POST", "/login", { form: { username: user.email, password: user.password } });
          logins.push(res.status);
        }),
      ]).finally(() => (done = true));
      while (!done) {
        const started = performance.now();
        const res = await h.call("GET", "/health");
        health.push(res.status === 200 ? performance.now() - started : Infinity);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await burst;
    });
    // Read (200), or refused by the guard or the database (400: too deep for one of them).
    expect(statements.every((s) => s === 200 || s === 400), String(statements)).toBe(true);
    expect(logins).toEqual(Array(10).fill(200));
    expect(delay).toBeLessThan(MAX_EVENT_LOOP_DELAY_MS);
    expect(Math.max(...health)).toBeLessThan(MAX_EVENT_LOOP_DELAY_MS);
  }, SLOW_TEST_MS);

  it("hashes and checks passwords off the event loop: during ten sign-ups and ten logins it is mostly idle", async () => {
    const before = performance.eventLoopUtilization();
    const statuses = await Promise.all([
      ...Array.from({ length: 10 }, async () => {
        const json = { name: "Burst", email: `${uniqueName("burst")}@example.com`, password: "password123" };
        return (await h.call("POST", "/users/", { json })).status;
      }),
      ...Array.from({ length: 10 }, async () => (await h.call("POST", "/login", { form: { username: user.email, password: user.password } })).status),
    ]);
    const busy = performance.eventLoopUtilization(before).utilization;
    expect(statuses).toEqual([...Array(10).fill(201), ...Array(10).fill(200)]);
    expect(busy).toBeLessThan(MAX_LOGIN_BURST_UTILIZATION);
  }, SLOW_TEST_MS);

  it("refuses a short MySQL or SQLite statement nested too deep before parsing it, without stalling the loop", async () => {
    // 33 characters: a failing parse of it took sql-parser-cst 23 s, on the event loop.
    const sql = `SELECT ${"(".repeat(25)}7`;
    const answers: Awaited<ReturnType<Harness["call"]>>[] = [];
    const delay = await maxLoopDelayDuring(async () => {
      for (const id of ids.slice(1)) answers.push(await h.call("POST", `/databases/${id}/query`, { token: user.token, json: { sql } }));
    });
    for (const res of answers) {
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ code: "sql_refused", rule: "too_deeply_nested" });
    }
    expect(delay).toBeLessThan(MAX_EVENT_LOOP_DELAY_MS);
  }, SLOW_TEST_MS);

  it("refuses SQL longer than QUERY_MAX_SQL_CHARS with 400, naming the limit, before parsing it", async () => {
    const sql = `SELECT ${"1+".repeat(50_000)}1`;
    const res = await h.call("POST", `/databases/${ids[0]}/query`, { token: user.token, json: { sql } });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ code: "sql_refused", rule: "too_large" });
    expect(res.body.detail).toContain(`is ${sql.length} characters long`);
    expect(res.body.detail).toContain("longer than 100000 characters are refused");
  });
});

describe("a parse past QUERY_PARSE_TIMEOUT_MS", () => {
  let h: Harness;
  let user: Awaited<ReturnType<Harness["newUser"]>>;
  let id: number;

  beforeAll(async () => {
    h = await createHarness({ env: { QUERY_PARSE_TIMEOUT_MS: "200" } });
    user = await h.newUser();
    id = await addConnection(h, user.token, await sqliteTarget(h.sqliteRoot));
  });
  afterAll(async () => h?.close());

  const query = (sql: string) => h.call("POST", `/databases/${id}/query`, { token: user.token, json: { sql } });

  it("is abandoned and refused with 400 parse_timeout, without stalling the loop, and the next long statement is served", async () => {
    // The parser threads are up (their first start may take longer than the budget).
    await expect.poll(async () => (await query(LONG_READ)).status, { timeout: 30_000, interval: 200 }).toBe(200);

    let res: Awaited<ReturnType<typeof query>> | undefined;
    const delay = await maxLoopDelayDuring(async () => {
      // Most of a second of parsing or more: sql-parser-cst on a 97 KB CASE.
      res = await query(`SELECT CASE ${Array.from({ length: 4400 }, (_, i) => `WHEN a=${i} THEN ${i}`).join(" ")} END`);
    });
    expect(res!.status).toBe(400);
    expect(res!.body).toMatchObject({ code: "sql_refused", rule: "parse_timeout" });
    expect(res!.body.detail).toContain("within 200 ms");
    expect(delay).toBeLessThan(MAX_EVENT_LOOP_DELAY_MS);

    // The thread that was parsing it was ended; a new one serves the next long statement.
    await expect.poll(async () => (await query(LONG_READ)).status, { timeout: 30_000, interval: 200 }).toBe(200);
  }, SLOW_TEST_MS);
});

describe("refused statements and the connection's budget", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ env: { CONNECTION_QUERIES_PER_MINUTE: "5" } });
  });
  afterAll(async () => h?.close());

  it.each([
    ["refused", "DELETE FROM Artist"],
    ["unparseable", "SELEC nonsense FROM"],
    ["too long", `SELECT '${"x".repeat(100_001)}'`],
  ])("a flood of %s statements answers 429 budget_exceeded once the budget is spent, for reads too", async (_, sql) => {
    const user = await h.newUser();
    const id = await addConnection(h, user.token, await sqliteTarget(h.sqliteRoot));
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await h.call("POST", `/databases/${id}/query`, { token: user.token, json: { sql } })).status);
    expect(statuses).toEqual([400, 400, 400, 400, 400, 429]);
    const read = await h.call("POST", `/databases/${id}/query`, { token: user.token, json: { sql: "SELECT 1" } });
    expect(read.status).toBe(429);
    expect(read.body.code).toBe("budget_exceeded");
    expect(Number(read.headers.get("retry-after"))).toBeGreaterThan(0);
  });
});
