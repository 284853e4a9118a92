// SIGTERM ends a real Pulse process within its documented bound whatever is in flight: a
// statement that runs for minutes on PostgreSQL, a runaway SQLite statement, and an /ask
// stream whose model server never answers; and a notification being sent is finished first.

import Database from "better-sqlite3";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { startFakeOpenAI, type FakeOpenAI } from "../support/fake-openai.js";
import { pgMonitoredDb } from "../support/monitoring.js";
import { startPulse, userToken } from "../support/pulse-process.js";
import { createPgDatabase, PG, pgAdmin, uniqueName } from "../support/services.js";
import { LOCAL_RECEIVER_ENV, startWebhookReceiver } from "../support/webhook-receiver.js";

/** DRAIN_TIMEOUT_MS + CLOSE_TIMEOUT_MS + 1 s (src/main.ts), plus slack for a loaded machine. */
const EXIT_BOUND_MS = 13_000 + 3_000;

describe("SIGTERM with work in flight", () => {
  let dataDir: string;
  let pg: Awaited<ReturnType<typeof createPgDatabase>>;
  let model: FakeOpenAI;
  beforeAll(async () => {
    dataDir = mkdtempSync(path.join(tmpdir(), "pulse-fault-"));
    mkdirSync(path.join(dataDir, "sqlite"));
    new Database(path.join(dataDir, "sqlite", "runaway.sqlite")).exec("CREATE TABLE t (x int)").close();
    pg = await createPgDatabase("pulse_fault");
    model = await startFakeOpenAI([{ fail: "hang" }]);
  });
  afterAll(async () => {
    await model?.close();
    await pg?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("exits within the bound with a long PostgreSQL statement, a runaway SQLite statement and a stuck /ask stream", async () => {
    const pulse = await startPulse({ DATA_DIR: dataDir, BCRYPT_ROUNDS: "4", OPENAI_BASE_URL: model.baseUrl, OPENAI_API_KEY: "sk-fault" });
    try {
      const token = await userToken(pulse, `${uniqueName("shutdown")}@example.com`);
      const add = async (json: unknown) => {
        const res = await pulse.call("POST", "/databases/add_db_connection", { token, json });
        expect(res.status, await res.clone().text()).toBe(201);
        return ((await res.json()) as { db_connection: { id: number } }).db_connection.id;
      };
      const pgId = await add({ db_type: "postgresql", host: PG.host, port: PG.port, database_name: pg.name, username: PG.user, db_password: "unused", name: "pg" });
      const sqliteId = await add({ db_type: "sqlite", database_name: "runaway.sqlite", name: "runaway" });

      let settled = 0;
      const inFlight = [
        pulse.call("POST", `/databases/${pgId}/query`, { token, json: { sql: "SELECT count(*) FROM generate_series(1, 10000000000)", timeout_ms: 30_000 } }),
        pulse.call("POST", `/databases/${sqliteId}/query`, {
          token,
          json: { sql: "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c", timeout_ms: 30_000 },
        }),
        pulse.call("POST", "/databases/connect_db/" + pgId, { token }).then(async (res) => {
          const { session_id } = (await res.json()) as { session_id: string };
          return pulse.call("POST", "/ask", { token, json: { question: "How many rows?", session_id, user_id: 1 }, headers: { accept: "text/event-stream" } });
        }),
      ].map((p) =>
        p
          .then((res) => res.text())
          .catch(() => "cut")
          .finally(() => settled++),
      );
      await new Promise((r) => setTimeout(r, 1_000));
      expect(settled, "all three requests are still running when the signal comes").toBe(0);

      const signalledAt = Date.now();
      pulse.child.kill("SIGTERM");
      // Bounded here too, so a process that never ends is killed by `finally`, not left behind.
      const exit = await Promise.race([pulse.exited, new Promise<null>((r) => setTimeout(() => r(null), EXIT_BOUND_MS + 5_000))]);
      const tookMs = Date.now() - signalledAt;
      expect(exit, `still running ${tookMs} ms after SIGTERM:\n${(pulse.stdout() + pulse.stderr())}`).not.toBeNull();

      expect(tookMs, (pulse.stdout() + pulse.stderr())).toBeLessThan(EXIT_BOUND_MS);
      expect(exit!.signal).toBeNull();
      expect((pulse.stdout() + pulse.stderr())).toContain("signal received");
      await Promise.all(inFlight);
    } finally {
      pulse.child.kill("SIGKILL");
    }
  }, 60_000);
});

describe("SIGTERM with a request still running as the drain ends", () => {
  it("answers it 503 shutting_down with Connection: close, and stops its statement at the database", async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), "pulse-fault-"));
    const target = await createPgDatabase("pulse_fault");
    const pulse = await startPulse({ DATA_DIR: dataDir, BCRYPT_ROUNDS: "4" });
    try {
      const token = await userToken(pulse, `${uniqueName("drain")}@example.com`);
      const added = await pulse.call("POST", "/databases/add_db_connection", {
        token,
        json: { db_type: "postgresql", host: PG.host, port: PG.port, database_name: target.name, username: PG.user, db_password: "unused", name: "pg" },
      });
      const id = ((await added.json()) as { db_connection: { id: number } }).db_connection.id;
      // A number no other statement has: what the server's list of statements is searched for.
      const n = 900_000_000 + Math.floor(Math.random() * 99_999_999);
      const running = async () =>
        (await pgAdmin<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1 AND pid <> pg_backend_pid()", "test", [`%${n}%`]))[0]!.n !== "0";
      const answer = pulse.call("POST", `/databases/${id}/query`, { token, json: { sql: `SELECT count(*) FROM generate_series(1, ${n}) a, generate_series(1, 1000) b`, timeout_ms: 60_000 } });
      answer.catch(() => {}); // awaited below
      await expect.poll(running, { timeout: 10_000 }).toBe(true);
      pulse.child.kill("SIGTERM");
      const res = await answer;
      expect(res.status).toBe(503);
      expect(res.headers.get("connection")).toBe("close");
      expect(await res.json()).toMatchObject({ code: "shutting_down" });
      await expect.poll(running, { timeout: 5_000 }).toBe(false);
      expect((await pulse.exited).code).toBe(0);
    } finally {
      pulse.child.kill("SIGKILL");
      await target.drop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe("SIGTERM right after a run that opened an alert", () => {
  it("sends its notification and records it as sent before the process exits", async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), "pulse-fault-"));
    const meta = await createPgDatabase("pulse_meta");
    const target = await pgMonitoredDb();
    await target.insertEvents(3, Date.now());
    const hooks = await startWebhookReceiver();
    const pulse = await startPulse({ DATA_DIR: dataDir, BCRYPT_ROUNDS: "4", DATABASE_URL: meta.url, ...LOCAL_RECEIVER_ENV });
    try {
      const token = await userToken(pulse, `${uniqueName("notify")}@example.com`);
      const created = async (route: string, json: unknown) => {
        const res = await pulse.call("POST", route, { token, json });
        expect(res.status, await res.clone().text()).toBe(201);
        return ((await res.json()) as { id: number }).id;
      };
      const connectionId = await created("/api/connections", target.body);
      await created("/api/channels", { kind: "webhook", url: `${hooks.url}/shutdown` });
      const tableId = await created("/api/tables", {
        connection_id: connectionId,
        table: "events",
        checks: [{ kind: "custom_sql", name: "none", sql: "SELECT count(*) FROM events", max: 0 }],
        alert: { open_after: 1 },
      });
      // The receiver answers a while after the run has, longer than the close's own bound
      // (CLOSE_TIMEOUT_MS, 2 s): the send is still under way at SIGTERM, and only the drain's
      // bound leaves it time to finish.
      hooks.delayNext(1, 4_000);
      expect((await pulse.call("POST", `/api/tables/${tableId}/run`, { token })).status).toBe(200);
      pulse.child.kill("SIGTERM");
      const exit = await Promise.race([pulse.exited, new Promise<null>((r) => setTimeout(() => r(null), EXIT_BOUND_MS))]);
      expect(exit, pulse.stdout() + pulse.stderr()).not.toBeNull();
      expect(hooks.at("/shutdown").map((r) => r.body.event)).toEqual(["alert.opened"]);
      // Recorded as sent, not left to be sent again once its claim runs out.
      expect(await pgAdmin("SELECT status FROM sent_notifications", meta.name)).toEqual([{ status: "sent" }]);
    } finally {
      pulse.child.kill("SIGKILL");
      await hooks.close();
      await target.drop();
      await meta.drop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});
