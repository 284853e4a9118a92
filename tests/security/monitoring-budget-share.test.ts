// Threat: one user's checks spending a shared database's whole monitoring budget. Every user
// whose connection reaches one database shares its monitoring budget (statements a minute), and
// a check the budget refuses is skipped, which opens no alert: another user's trial runs (each
// change of a table's checks runs them all) left a victim's monitoring blind. The users whose
// checks used a database in the last hour now share its budget equally; a user alone has all of it.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";
import { addConnection, monitorTable, monitorTableUnchecked, sqliteMonitoredDb, type MonitoredDb } from "../support/monitoring.js";

const countCheck = (name: string) => ({ kind: "custom_sql" as const, name, sql: "SELECT count(*) FROM events", min: 0 });

describe("a database's monitoring budget", () => {
  let h: Harness;
  const dbs: MonitoredDb[] = [];
  beforeAll(async () => {
    h = await createHarness({ env: { MONITOR_QUERIES_PER_MINUTE: "10" } });
  });
  afterAll(async () => {
    await h?.close();
    for (const db of dbs) await db.drop();
  });
  const database = async () => {
    const db = await sqliteMonitoredDb(h.sqliteRoot);
    await db.insertEvents(3, Date.now());
    dbs.push(db);
    return db;
  };

  it("is all for a user alone on the database", async () => {
    const db = await database();
    const user = await h.newUser();
    const checks = Array.from({ length: 8 }, (_, i) => countCheck(`c${i}`));
    const table = await monitorTableUnchecked(h, user, { connection_id: await addConnection(h, user.token, db.body), table: "events" }, checks);
    const run = await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token });
    expect(run.body.outcomes.map((o: { status: string }) => o.status)).toEqual(Array(8).fill("pass"));
  });

  it("leaves another user with checks there their part, however many trial runs one user asks for", async () => {
    const shared = await database();
    const victim = await h.newUser();
    const victimTable = await monitorTable(h, victim.token, { connection_id: await addConnection(h, victim.token, shared.body), table: "events", checks: [countCheck("v")] });

    const attacker = await h.newUser();
    const attackerTable = await monitorTable(h, attacker.token, { connection_id: await addConnection(h, attacker.token, shared.body), table: "events", checks: [countCheck("a")] });
    // Ten checks to try at once: as many as the whole budget of the database.
    const flood = await h.call("PATCH", `/api/tables/${attackerTable.id}`, {
      token: attacker.token,
      json: { checks: Array.from({ length: 10 }, (_, i) => countCheck(`a${i}`)) },
    });
    expect(flood.status).toBe(429);
    expect(flood.body).toMatchObject({ code: "budget_exceeded", detail: expect.stringContaining("your share of 10 per minute across 2 users") });

    const run = await h.call("POST", `/api/tables/${victimTable.id}/run`, { token: victim.token });
    expect(run.status).toBe(200);
    expect(run.body.outcomes).toEqual([expect.objectContaining({ check: "custom_sql:v", status: "pass", value: 3 })]);
  });
});
