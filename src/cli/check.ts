// `pulse check <table_id> [--json]`: runs one monitored table's checks now, with the
// service's configuration, prints the outcomes, and exits 1 when a check failed or errored
// (2 for a bad argument or an unknown table; 3 while an instance runs checks of the table's
// connection, which this run would double: retry shortly; 4 while a server holds the
// embedded store, which PGlite lets one process open). Seed 003's manual worker.

import { pino } from "pino";

import { ConfigError, loadConfig } from "../config.js";
import { DomainError } from "../errors.js";
import { buildDeps, closeDeps } from "../lifecycle.js";
import { createLogger } from "../logger.js";
import type { TableRunReport } from "../monitoring/run-table.js";
import { deliveriesSettled } from "../monitoring/notifiers.js";
import { runAnyMonitoredTableNow } from "../services/monitored-tables.js";
import { StartupError } from "../startup-error.js";
import { StoreInUseError } from "../store/data-dir-lock.js";

function print(report: TableRunReport, json: boolean) {
  if (json) {
    console.log(JSON.stringify(report, null, 2));
    return;
  }
  const target = report.target ? (report.target.replica ? `replica (lag ${report.target.replication_lag_seconds ?? "unknown"} s)` : "primary") : "unreachable";
  console.log(`table ${report.table_id}: ${report.outcomes.length} checks on a ${target}, ${report.started_at}`);
  for (const o of report.outcomes) {
    const value = o.value === null ? "" : ` value=${o.value}`;
    console.log(`  ${o.status.toUpperCase().padEnd(7)} ${o.check}${value}  ${o.message}`);
  }
}

/** The exit code (see above); the report on stdout, anything else on stderr. */
export async function check(args: string[]): Promise<number> {
  const json = args.includes("--json");
  const idText = args.find((a) => !a.startsWith("--"));
  const id = Number(idText);
  if (!idText || !Number.isSafeInteger(id) || id <= 0) {
    console.error("usage: pulse check <table_id> [--json]");
    return 2;
  }

  let code = 0;
  try {
    const config = loadConfig();
    // Logs go to stderr, so stdout stays the report.
    // Its checks run under the monitoring budget: it takes no share of the servers' query budgets.
    const deps = await buildDeps(config, createLogger(config.logLevel === "info" ? "warn" : config.logLevel, pino.destination(2), config.logFormat), { serving: false });
    try {
      const report = await runAnyMonitoredTableNow(deps, id);
      if (!report) {
        console.error(`no monitored table with id ${id}`);
        code = 2;
      } else {
        print(report, json);
        code = report.outcomes.some((o) => o.status === "fail" || o.status === "error") ? 1 : 0;
      }
    } catch (err) {
      if (!(err instanceof DomainError && err.code === "conflict")) throw err;
      console.error(err.message);
      code = 3;
    } finally {
      // The run's notifications are sent (or recorded as failed) before the process exits.
      await deliveriesSettled(deps);
      await closeDeps(deps);
    }
  } catch (err) {
    if (err instanceof StoreInUseError) {
      // Asking the server to run them would need a user's token, which a shell does not have.
      console.error(
        `pulse check: the embedded store ${err.dir} is in use by pid ${err.owner.pid} (${err.owner.command}), and PGlite allows one process; ` +
          `run the checks through that server (POST /api/tables/${id}/run with the owner's token), or stop it first`,
      );
      code = 4;
    } else {
      console.error(err instanceof ConfigError || err instanceof StartupError ? err.message : err);
      code = 1;
    }
  }
  return code;
}
