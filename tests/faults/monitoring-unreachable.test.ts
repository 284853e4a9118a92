// A monitored database that cannot be reached (red-team pass): once a run has found it
// unreachable, after its retries, the run's other checks report that without trying again.
// Each check used to retry from scratch, so a database dropping connections held one run (a
// scheduler slot, or the person who asked for it) for the retries of every check: 88 s for five
// checks behind a silent firewall, about 300 s with the defaults.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { runTableChecks } from "../../src/monitoring/run-table.js";
import { getMonitoredTable } from "../../src/store/monitoring-tables.js";
import { createHarness, type Harness } from "../support/harness.js";
import { addConnection, monitorTable, pgMonitoredDb, type MonitoredDb } from "../support/monitoring.js";
import { startTcpRelay, type TcpRelay } from "../support/tcp-relay.js";

const RETRY_ATTEMPTS = 3;
let h: Harness;
let target: MonitoredDb;
let relay: TcpRelay;

beforeAll(async () => {
  h = await createHarness({ env: { MONITOR_RETRY_ATTEMPTS: String(RETRY_ATTEMPTS), MONITOR_RETRY_BASE_MS: "0" } });
  target = await pgMonitoredDb();
  await target.insertEvents(3, Date.now());
  relay = await startTcpRelay({ host: String(target.body.host), port: Number(target.body.port) });
});
afterAll(async () => {
  await h?.close();
  await relay?.close();
  await target?.drop();
});

describe("a run against a database that stopped taking connections", () => {
  it.each(["manual", "schedule"] as const)("tries it once, with its retries, and reports every check unreachable (%s)", async (trigger) => {
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, { ...target.body, port: relay.port });
    const checks = ["a", "b", "c", "d", "e"].map((name) => ({ kind: "custom_sql", name, sql: "SELECT count(*) FROM events", max: 100 }));
    const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "events", checks });
    relay.cut();
    relay.refuse(true);
    try {
      const before = relay.accepted;
      const outcomes =
        trigger === "manual"
          ? (await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token })).body.outcomes
          : (await runTableChecks(h.deps, (await getMonitoredTable(h.deps.store.db, user.id, table.id))!, "schedule")).outcomes;
      // One round of retries for the database (4 connections measured; 16-19 when each check
      // retried on its own), not one per check.
      expect(relay.accepted - before).toBeLessThanOrEqual(2 * RETRY_ATTEMPTS);
      expect(outcomes).toHaveLength(5);
      for (const outcome of outcomes) expect(outcome.message).toMatch(/connect|connection/i);
    } finally {
      relay.refuse(false);
    }
  });
});
