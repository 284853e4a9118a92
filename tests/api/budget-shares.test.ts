// A database's interactive budget (CONNECTION_QUERIES_PER_MINUTE, CONNECTION_MAX_CONCURRENCY)
// holds for the whole deployment: two instances sharing Redis and PostgreSQL each take half.

import { describe, expect, it } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";
import { sqliteTarget } from "../support/targets.js";

const PER_MINUTE = 4;
/** Short, so an instance learns of the other's arrival or departure within the test. */
const HEARTBEAT_MS = 100;

/** Two instances of one deployment, each knowing of the other. */
async function twoInstances() {
  const first = await createHarness({ sessions: "redis", heartbeatMs: HEARTBEAT_MS, env: { CONNECTION_QUERIES_PER_MINUTE: String(PER_MINUTE) } });
  const second = await createHarness({ shareWith: first, heartbeatMs: HEARTBEAT_MS, env: { CONNECTION_QUERIES_PER_MINUTE: String(PER_MINUTE) } });
  await expect.poll(async () => (await first.deps.sessions.instances()).count).toBe(2);
  await expect.poll(async () => (await second.deps.sessions.instances()).count).toBe(2);
  return [first, second] as const;
}

async function connectionOf(h: Harness, token: string) {
  const target = await sqliteTarget(h.sqliteRoot);
  const added = await h.call("POST", "/databases/add_db_connection", { token, json: target.body });
  expect(added.status).toBe(201);
  return added.body.db_connection.id as number;
}

async function queries(h: Harness, token: string, id: number, n: number) {
  const responses = [];
  for (let i = 0; i < n; i++) responses.push(await h.call("POST", `/databases/${id}/query`, { token, json: { sql: "SELECT 1" } }));
  return responses;
}

describe("POST /databases/{id}/query on two instances", () => {
  it("refuses on each instance once its share of the queries per minute is spent, so the deployment runs at most the setting", async () => {
    const [first, second] = await twoInstances();
    try {
      const user = await first.newUser();
      const id = await connectionOf(first, user.token);

      const onFirst = await queries(first, user.token, id, 3);
      const onSecond = await queries(second, user.token, id, 3);
      expect(onFirst.map((r) => r.status)).toEqual([200, 200, 429]);
      expect(onSecond.map((r) => r.status)).toEqual([200, 200, 429]);
      for (const refused of [onFirst[2]!, onSecond[2]!]) {
        expect(refused.body.code).toBe("budget_exceeded");
        expect(refused.body.detail).toContain(`this instance's share of ${PER_MINUTE} per minute across 2 instances`);
        expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
      }
    } finally {
      await second.close();
      await first.close();
    }
  });

  it("gives the instance left the whole budget once the other has closed", async () => {
    const [first, second] = await twoInstances();
    let secondOpen = true;
    try {
      const user = await first.newUser();
      const spent = await connectionOf(first, user.token);
      expect((await queries(first, user.token, spent, 3)).map((r) => r.status)).toEqual([200, 200, 429]);

      await second.close();
      secondOpen = false;
      // Once the first has counted itself alone for an expiry window (three heartbeats).
      await expect.poll(async () => (await first.deps.sessions.instances()).count, { timeout: 3000 }).toBe(1);

      const fresh = await connectionOf(first, user.token);
      expect((await queries(first, user.token, fresh, PER_MINUTE + 1)).map((r) => r.status)).toEqual([200, 200, 200, 200, 429]);
      // A budget made while shared takes the whole one too: refilling at the full rate, and
      // refusing in the words of the whole budget.
      const [again] = await queries(first, user.token, spent, 1);
      expect(again!.status).toBe(429);
      expect(again!.body.detail).toContain(`(${PER_MINUTE} per minute)`);
    } finally {
      if (secondOpen) await second.close();
      await first.close();
    }
  });
});
