// A table's checks run now, outside the schedule (POST /api/tables/{id}/run, `npm run check`),
// under the scheduler's rule: the run holds the table's lease while it goes, and is refused
// while another instance runs checks of the table's connection, whose budget would be doubled.

import type { Requester } from "../connectors/guarded.js";
import type { Deps } from "../deps.js";
import { DomainError, notFound } from "../errors.js";
import { leaseTableForRun, releaseLease } from "../store/monitoring-tables.js";
import type { MonitoredTableRow } from "../store/schema.js";
import { endLease, keepLease } from "./keep-lease.js";
import { runTableChecks, type TableRunReport } from "./run-table.js";

const BUSY = {
  connection: "Checks of this table's connection are running on another instance; retry shortly",
  table: "This table's checks are running already; retry shortly",
} as const;

/** Runs `table`'s checks now, leaving its schedule as it is (last_run_at says it ran). Throws `conflict` while another
 * instance runs checks of its connection, or this table's checks are running already. */
export async function runTableNow(deps: Deps, table: MonitoredTableRow, requester: Requester): Promise<TableRunReport> {
  const m = deps.monitoring;
  const owner = m.instanceId;
  const now = m.now();
  const leased = await leaseTableForRun(deps.store.db, { id: table.id, owner, now: new Date(now), leaseUntil: new Date(now + m.settings.leaseSeconds * 1000) });
  if (!leased) throw notFound("Monitored table");
  if ("busy" in leased) throw new DomainError("conflict", BUSY[leased.busy], { busy: leased.busy });
  const lease = keepLease(deps, { id: table.id, owner, until: leased.leased.leaseUntil! });
  let ranAt: Date | undefined;
  try {
    const report = await runTableChecks(deps, leased.leased, "manual", requester);
    ranAt = new Date(report.started_at);
    return report;
  } finally {
    await lease.stop();
    // The schedule stays; last_run_at says the checks ran.
    const release = (leaseUntil: Date | null) => releaseLease(deps.store.db, { id: table.id, owner, lastRunAt: ranAt, leaseUntil });
    // The answer waits for one try; while the store is away, more follow in the background.
    await release(lease.until()).catch(() => void endLease(deps, table.id, lease, release));
  }
}
