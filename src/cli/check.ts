// `pulse check <table_id> [--json]`: runs one monitored table's checks now, with the
// service's configuration, prints the outcomes, and exits 1 when a check failed or errored
// (2 for a bad argument or an unknown table; 3 while an instance runs checks of the table's
// connection, which this run would double: retry shortly; 4 while a server holds the
// embedded store, which PGlite lets one process open; 5 when it could not run at all: its
// settings, its store). Seed 003's manual worker.

import { parseArgs } from "node:util";

import { pino } from "pino";

import { ConfigError, loadConfig } from "../config.js";
import { counted } from "../counted.js";
import { DomainError } from "../errors.js";
import { MAX_ROW_ID } from "../http/schemas.js";
import { buildDeps, closeDeps } from "../lifecycle.js";
import { createLogger } from "../logger.js";
import type { TableRunReport } from "../monitoring/run-table.js";
import { deliveriesSettled } from "../monitoring/notifiers.js";
import { runAnyMonitoredTableNow } from "../services/monitored-tables.js";
import { StartupError } from "../startup-error.js";
import { StoreInUseError } from "../store/data-dir-lock.js";
import { shownJson, shownText } from "../terminal-text.js";
import { storeFailedLine } from "./store-failed.js";
import { printUnforeseen } from "./unforeseen.js";

/** A check's name and message carry what the monitored database names (terminal-text.ts). */
function print(report: TableRunReport, json: boolean) {
  if (json) {
    console.log(shownJson(report));
    return;
  }
  const target = report.target ? (report.target.replica ? `replica (lag ${report.target.replication_lag_seconds ?? "unknown"} s)` : "primary") : "unreachable";
  console.log(`table ${report.table_id}: ${counted(report.outcomes.length, "check")} on a ${target}, ${report.started_at}`);
  for (const o of report.outcomes) {
    const value = o.value === null ? "" : ` value=${o.value}`;
    console.log(`  ${o.status.toUpperCase().padEnd(7)} ${shownText(o.check)}${value}  ${shownText(o.message)}`);
  }
}

const USAGE = "usage: pulse check <table_id> [--json]";

/** The table id and --json, or why the arguments are not those (node's own parser: an unknown
 * option, such as a misspelt --jsn, is refused rather than ignored). */
function parsed(args: string[]): { id: number; json: boolean } | { error: string; json: boolean } {
  let values: { json?: boolean | undefined };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args, options: { json: { type: "boolean" } }, allowPositionals: true, strict: true }));
  } catch (err) {
    return { error: `${(err as Error).message}; ${USAGE}`, json: args.includes("--json") };
  }
  const json = values.json === true;
  // Digits only, within the store's ids: not 0x1 or 1e0 read as 1, nor an id the store cannot hold.
  const [idText, ...rest] = positionals;
  if (idText === undefined || rest.length > 0) return { error: USAGE, json };
  if (!/^[1-9]\d{0,9}$/.test(idText) || Number(idText) > MAX_ROW_ID) return { error: `table_id must be a whole number from 1 to ${MAX_ROW_ID}; ${USAGE}`, json };
  return { id: Number(idText), json };
}

/** The configuration, the store or Pulse itself kept the checks from running. */
const COULD_NOT_RUN = 5;

/** The exit code (see above); the report on stdout, anything else on stderr (and with --json,
 * on stdout too as {"error", "detail"}, so that a pipe always gets JSON). */
export async function check(args: string[]): Promise<number> {
  const parsedArgs = parsed(args);
  const json = parsedArgs.json;
  const fail = (code: number, error: string, detail: string) => {
    console.error(detail);
    if (json) console.log(JSON.stringify({ error, detail }));
    return code;
  };
  if ("error" in parsedArgs) return fail(2, "bad_argument", parsedArgs.error);
  const { id } = parsedArgs;

  try {
    const config = loadConfig(process.env, process.stdout.isTTY === true, { existingStore: true });
    // Logs go to stderr, so stdout stays the report. Unless LOG_LEVEL asks for more, errors
    // only: the run's warnings (a check failing, its alert opening) repeat the report as JSON
    // lines beside it, and a notification it could not deliver is retried by the servers.
    const level = process.env.LOG_LEVEL?.trim() ? config.logLevel : "error";
    // Its checks run under the monitoring budget: it takes no share of the servers' query budgets.
    const deps = await buildDeps(config, createLogger(level, pino.destination(2), config.logFormat), { serving: false });
    try {
      const report = await runAnyMonitoredTableNow(deps, id);
      if (!report) return fail(2, "not_found", `no monitored table with id ${id}`);
      print(report, json);
      return report.outcomes.some((o) => o.status === "fail" || o.status === "error") ? 1 : 0;
    } catch (err) {
      if (!(err instanceof DomainError && err.code === "conflict")) throw err;
      return fail(3, "conflict", err.message);
    } finally {
      // The run's notifications are sent (or recorded as failed) before the process exits.
      await deliveriesSettled(deps);
      await closeDeps(deps);
    }
  } catch (err) {
    if (err instanceof StoreInUseError) {
      // Asking the server to run them would need a user's token, which a shell does not have.
      return fail(
        4,
        "store_in_use",
        `pulse check: the embedded store ${err.dir} is in use by pid ${err.owner.pid} (${err.owner.command}), and PGlite allows one process; ` +
          `run the checks through that server (POST /api/tables/${id}/run with the owner's token), or stop it first`,
      );
    }
    // Exit 5, not 1: a cron job must tell "pulse could not run" from "a check failed".
    if (err instanceof ConfigError || err instanceof StartupError) return fail(COULD_NOT_RUN, "failed", err.message);
    // The checks may have run without their outcomes recorded or their alerts opened.
    const storeFailed = storeFailedLine("pulse check", err, "their outcomes may not be recorded: run it again once the store answers");
    if (storeFailed) return fail(COULD_NOT_RUN, "store_unavailable", storeFailed);
    printUnforeseen(err, json);
    return COULD_NOT_RUN;
  }
}
