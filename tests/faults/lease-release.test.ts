// The metadata store away for a moment just as a run ends (red-team pass): the lease the run
// held could not be ended, and the table then waited for it to expire (MONITOR_LEASE_SECONDS,
// five minutes by default) before it was scheduled again, manual runs of it refused with 409
// "running already" meanwhile. Ending a lease is now tried again while the store is away.

import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createScheduler } from "../../src/monitoring/scheduler.js";
import { openStore, type Store } from "../../src/store/client.js";
import { leaseTableForRun } from "../../src/store/monitoring-tables.js";
import { rowsOf } from "../../src/store/rows.js";
import { createHarness, type Harness } from "../support/harness.js";
import { addConnection, monitorTable } from "../support/monitoring.js";
import { PG } from "../support/services.js";
import { sqliteTarget } from "../support/targets.js";
import { startTcpRelay, type TcpRelay } from "../support/tcp-relay.js";

let h: Harness;
let relay: TcpRelay;
let relayed: Store;
/** Monitoring's clock runs ahead of the real one by this much. */
let ahead = 0;

beforeAll(async () => {
  // No jitter: a table is due as soon as it is added.
  h = await createHarness({ random: () => 0, now: () => Date.now() + ahead });
  relay = await startTcpRelay({ host: PG.host, port: PG.port });
  // The same metadata database as the harness's, reached through the relay.
  const name = new URL(h.config.databaseUrl!).pathname.slice(1);
  relayed = await openStore({ databaseUrl: `postgresql://${PG.user}@127.0.0.1:${relay.port}/${name}`, queryTimeoutMs: 500 });
});
afterAll(async () => {
  await relayed?.close();
  await relay?.close();
  await h?.close();
});

describe("a scheduled run whose lease cannot be ended at once", () => {
  it("ends it once the store answers again, instead of leaving the table leased until the lease expires", async () => {
    const user = await h.newUser();
    const target = await sqliteTarget(h.sqliteRoot);
    const connectionId = await addConnection(h, user.token, target.body);
    const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "Track", checks: [{ kind: "volume", min_rows: 1 }] });
    const scheduler = createScheduler({ ...h.deps, store: relayed }, { instanceId: "lease-release-test" });
    // completeLease's update is the one statement that sets last_run_at: its session goes silent.
    relay.freezeOn(`"last_run_at" = $2`);
    const tick = scheduler.tick();
    // Past the store's query timeout (500 ms): the first try has failed.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    relay.freezeOn(null);
    const { claimed } = await tick;
    expect(claimed).toEqual([table.id]);
    const [row] = rowsOf<{ lease_owner: string | null; scheduled: boolean }>(
      await h.deps.store.db.execute(sql`SELECT lease_owner, next_run_at > now() AS scheduled FROM monitored_tables WHERE id = ${table.id}`),
    );
    expect(row).toEqual({ lease_owner: null, scheduled: true });
    // Nothing holds the table: a manual run is not refused as "running already".
    expect((await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token })).status).toBe(200);
    await scheduler.stop();
  }, 60_000);

  it("leaves alone a later lease of the same instance that a retry would otherwise end", async () => {
    const user = await h.newUser();
    const target = await sqliteTarget(h.sqliteRoot);
    const connectionId = await addConnection(h, user.token, target.body);
    const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "Track", checks: [{ kind: "volume", min_rows: 1 }] });
    // As in production: the scheduler leases under the instance's id, as manual runs do.
    const me = h.deps.monitoring.instanceId;
    const scheduler = createScheduler({ ...h.deps, store: relayed }, { instanceId: me });
    relay.freezeOn(`"last_run_at" = $2`);
    const tick = scheduler.tick();
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    // The store stayed away past the lease, which expired; a manual run here took the table.
    ahead += (h.config.monitor.leaseSeconds + 1) * 1000;
    const now = h.deps.monitoring.now();
    const manual = await leaseTableForRun(h.deps.store.db, { id: table.id, owner: me, now: new Date(now), leaseUntil: new Date(now + h.config.monitor.leaseSeconds * 1000) });
    expect(manual && "leased" in manual).toBe(true);
    relay.freezeOn(null);
    await tick;
    // The old run's retry ended nothing: the manual run still holds the table, and another
    // instance may not run it meanwhile.
    const [row] = rowsOf<{ lease_owner: string | null }>(await h.deps.store.db.execute(sql`SELECT lease_owner FROM monitored_tables WHERE id = ${table.id}`));
    expect(row!.lease_owner).toBe(me);
    const other = await leaseTableForRun(h.deps.store.db, { id: table.id, owner: "another-instance", now: new Date(now), leaseUntil: new Date(now + 60_000) });
    expect(other && "busy" in other).toBe(true);
    await scheduler.stop();
  }, 60_000);
});
