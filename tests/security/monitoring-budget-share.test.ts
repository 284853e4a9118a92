// Threat: one user's checks spending a shared database's whole monitoring budget. Every user
// whose connection reaches one database shares its monitoring budget (statements a minute), and
// a check the budget refuses is skipped, which opens no alert: another user's trial runs (each
// change of a table's checks runs them all) left a victim's monitoring blind. Each user may now
// spend at most half of a database's budget.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";
import { addConnection, monitorTable, sqliteMonitoredDb, type MonitoredDb } from "../support/monitoring.js";

describe("a database's monitoring budget, shared by two users", () => {
  let h: Harness;
  let shared: MonitoredDb;
  beforeAll(async () => {
    h = await createHarness({ env: { MONITOR_QUERIES_PER_MINUTE: "10" } });
    shared = await sqliteMonitoredDb(h.sqliteRoot);
    await shared.insertEvents(3, Date.now());
  });
  afterAll(async () => {
    await h?.close();
    await shared?.drop();
  });

  const countCheck = (name: string) => ({ kind: "custom_sql", name, sql: "SELECT count(*) FROM events", min: 0 });

  it("leaves the other user's checks their part, however many trial runs one user asks for", async () => {
    const attacker = await h.newUser();
    const attackerTable = await monitorTable(h, attacker.token, { connection_id: await addConnection(h, attacker.token, shared.body), table: "events", checks: [countCheck("a")] });
    // Ten checks to try at once: more than the whole budget of the database.
    const flood = await h.call("PATCH", `/api/tables/${attackerTable.id}`, {
      token: attacker.token,
      json: { checks: Array.from({ length: 10 }, (_, i) => countCheck(`a${i}`)) },
    });
    expect(flood.status).toBe(429);
    expect(flood.body.code).toBe("budget_exceeded");

    const victim = await h.newUser();
    const victimTable = await monitorTable(h, victim.token, { connection_id: await addConnection(h, victim.token, shared.body), table: "events", checks: [countCheck("v")] });
    const run = await h.call("POST", `/api/tables/${victimTable.id}/run`, { token: victim.token });
    expect(run.status).toBe(200);
    expect(run.body.outcomes).toEqual([expect.objectContaining({ check: "custom_sql:v", status: "pass", value: 3 })]);
  });
});
