// A saved connection changed or deleted while work on it is in flight. A statement already
// running finishes where it started; one still waiting its turn when the change answers runs
// where the connection reaches now (or not at all, once it is deleted), never on the old
// target, on this instance and on another sharing Redis.

import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";
import { addConnection, pgMonitoredDb, type MonitoredDb } from "../support/monitoring.js";
import { pgAdmin, pgUrl } from "../support/services.js";

let a: Harness;
let b: Harness;
const dbs: MonitoredDb[] = [];

beforeAll(async () => {
  // One statement at a time per database: a second waits for the first's slot.
  const env = { TOKEN_RECHECK_SECONDS: "3600", CONNECTION_MAX_CONCURRENCY: "1" };
  a = await createHarness({ sessions: "redis", env });
  b = await createHarness({ shareWith: a, env });
}, 120_000);
afterAll(async () => {
  await b?.close();
  await a?.close();
  for (const db of dbs) await db.drop();
});

async function newDb(): Promise<MonitoredDb> {
  const db = await pgMonitoredDb();
  dbs.push(db);
  return db;
}

/** `db`'s `events` locked by the test: a statement reading it waits until `unlock`. */
async function lockEvents(db: MonitoredDb) {
  const name = db.body.database_name as string;
  const locker = new pg.Client({ connectionString: pgUrl(name) });
  await locker.connect();
  await locker.query("BEGIN; LOCK TABLE events IN ACCESS EXCLUSIVE MODE");
  const waiting = async () => {
    const [row] = await pgAdmin<{ n: string }>(
      "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock' AND query LIKE '%events%'",
      "postgres",
      [name],
    );
    return Number(row!.n);
  };
  return {
    blocked: () => vi.waitFor(async () => expect(await waiting()).toBeGreaterThan(0), { timeout: 10_000, interval: 50 }),
    unlock: async () => {
      await locker.query("COMMIT");
      await locker.end();
    },
  };
}

/** Time for a statement just asked for to pass the guard and wait for the database's one slot. */
const queued = () => new Promise((resolve) => setTimeout(resolve, 300));

describe("a statement waiting for its slot when its connection changes", () => {
  for (const where of ["this instance", "another instance"] as const) {
    it(`runs on the connection's new database once a PUT on ${where} moved it, never the old one`, async () => {
      const user = await a.newUser();
      const [before, after] = [await newDb(), await newDb()];
      const id = await addConnection(a, user.token, before.body);
      const lock = await lockEvents(before);
      try {
        const running = a.call("POST", `/databases/${id}/query`, { token: user.token, json: { sql: "SELECT count(*) AS n FROM events" } });
        await lock.blocked();
        const waiting = a.call("POST", `/databases/${id}/query`, { token: user.token, json: { sql: "SELECT current_database() AS db" } });
        await queued();
        const mover = where === "this instance" ? a : b;
        const moved = await mover.call("PUT", `/databases/${id}`, { token: user.token, json: { database_name: after.body.database_name, db_password: "unused" } });
        expect(moved.status, moved.text).toBe(200);
        // The news reaches the other instance (the PUT's publish has answered).
        await vi.waitFor(() => expect(a.deps.connectors.targetOf(id)).toBeUndefined());
        await lock.unlock();
        expect((await running).status).toBe(200);
        const res = await waiting;
        expect(res.status, res.text).toBe(200);
        expect(res.body.data.rows).toEqual([[after.body.database_name]]);
      } finally {
        await lock.unlock().catch(() => undefined);
      }
    });
  }

  it("is answered 404 once the connection is deleted, and never runs", async () => {
    const user = await a.newUser();
    const db = await newDb();
    const id = await addConnection(a, user.token, db.body);
    const lock = await lockEvents(db);
    try {
      const running = a.call("POST", `/databases/${id}/query`, { token: user.token, json: { sql: "SELECT count(*) AS n FROM events" } });
      await lock.blocked();
      const waiting = a.call("POST", `/databases/${id}/query`, { token: user.token, json: { sql: "SELECT 'after_deletion' AS marker" } });
      await queued();
      expect((await b.call("DELETE", `/databases/${id}`, { token: user.token })).status).toBe(204);
      await vi.waitFor(() => expect(a.deps.connectors.targetOf(id)).toBeUndefined());
      await lock.unlock();
      expect((await running).status).toBe(200);
      const res = await waiting;
      expect(res.status, res.text).toBe(404);
      await a.deps.audit!.flush();
      const audit = await a.call("GET", "/api/audit", { token: user.token });
      expect(audit.status).toBe(200);
      expect(JSON.stringify(audit.body)).not.toContain("after_deletion");
    } finally {
      await lock.unlock().catch(() => undefined);
    }
  });
});
