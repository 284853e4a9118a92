// `pulse secrets rotate [--json]`: re-seals every sealed value in the metadata store (saved
// connections' passwords, channels' URLs) under SECRETS_KEY, opening them with it or
// SECRETS_KEY_PREVIOUS, while the service runs (README, Rotating secrets). Exits 0 once every
// value is under SECRETS_KEY, so SECRETS_KEY_PREVIOUS can go; 1 when some are not (opened by
// no key given, listed; or changed at every attempt, to run again); 2 for a bad argument; 4
// while a server holds the embedded store; 5 when it could not run at all (settings, store);
// 130 or 143 when SIGINT or SIGTERM stopped it, after the batch it was on.

import { parseArgs } from "node:util";

import { openingKeys } from "../auth/secrets.js";
import { ConfigError, loadConfig } from "../config.js";
import { rotateSealedValues, type RotationReport, type RowRef } from "../services/secret-rotation.js";
import { StartupError } from "../startup-error.js";
import { openStore, storeLocation } from "../store/client.js";
import { StoreInUseError } from "../store/data-dir-lock.js";
import { storeFailedLine } from "./store-failed.js";
import { printUnforeseen } from "./unforeseen.js";

const USAGE = "usage: pulse secrets rotate [--json]";

/** Whether the arguments are `rotate` and maybe --json, or why not (an unknown option is
 * refused by node's parser rather than ignored). */
function parsed(args: string[]): { json: boolean; error?: string } {
  try {
    const { values, positionals } = parseArgs({ args, options: { json: { type: "boolean" } }, allowPositionals: true, strict: true });
    const json = values.json === true;
    return positionals.length === 1 && positionals[0] === "rotate" ? { json } : { json, error: USAGE };
  } catch (err) {
    return { json: args.includes("--json"), error: `${(err as Error).message}; ${USAGE}` };
  }
}

const listed = (rows: RowRef[]) => rows.map((r) => `${r.table} ${r.id}`).join(", ");

function print(report: RotationReport, json: boolean) {
  if (json) {
    console.log(JSON.stringify(report, null, 2));
    return;
  }
  console.log(`${report.resealed} re-sealed under SECRETS_KEY, ${report.current} already under it`);
  if (report.unreadable.length > 0) {
    console.log(`${report.unreadable.length} opened by no key given (SECRETS_KEY, SECRETS_KEY_PREVIOUS), left as they are: ${listed(report.unreadable)}`);
  }
  if (report.changing.length > 0) console.log(`${report.changing.length} changed at every attempt, run again: ${listed(report.changing)}`);
}

/** The configuration or the store kept it from running. */
const COULD_NOT_RUN = 5;

/** The exit code of a run a signal stopped: a shell's for a process it killed (128 + its number). */
const STOPPED_BY = { SIGINT: 130, SIGTERM: 143 } as const;
type StopSignal = keyof typeof STOPPED_BY;

/** The first SIGINT or SIGTERM stops the rotation after the batch it is on (a statement, at most
 * STORE_QUERY_TIMEOUT_MS), so that what was done is still said, to a pipe too; a second one
 * stops the process at once (node's default, the listeners gone). `off()` removes them. */
function stopOnSignal() {
  const controller = new AbortController();
  let caught: StopSignal | undefined;
  const signals = Object.keys(STOPPED_BY) as StopSignal[];
  const off = () => {
    for (const s of signals) process.off(s, on);
  };
  const on = (signal: StopSignal) => {
    caught = signal;
    off();
    controller.abort();
    console.error(`pulse secrets rotate: ${signal}: stopping after the current batch (again to stop at once)`);
  };
  for (const s of signals) process.on(s, on);
  return { signal: controller.signal, caught: () => caught, off };
}

/** What a stopped rotation did, on stdout (with --json, as {"error": "interrupted", "detail",
 * "report"}), and why it stopped, on stderr. */
function interrupted({ resealed, current, unreadable, changing }: RotationReport, signal: StopSignal, json: boolean): number {
  const report = { resealed, current, unreadable, changing };
  const detail = `pulse secrets rotate: interrupted (${signal}) before every value was walked; what was re-sealed stays so: run it again to finish`;
  console.error(detail);
  if (json) console.log(JSON.stringify({ error: "interrupted", detail, report }));
  else print(report, false);
  return STOPPED_BY[signal];
}

/** The exit code (see above); the report on stdout, anything else on stderr (and with --json,
 * on stdout too as {"error", "detail"}). */
export async function secrets(args: string[]): Promise<number> {
  const { json, error } = parsed(args);
  const fail = (code: number, kind: string, detail: string) => {
    console.error(detail);
    if (json) console.log(JSON.stringify({ error: kind, detail }));
    return code;
  };
  if (error) return fail(2, "bad_argument", error);

  const stop = stopOnSignal();
  try {
    const config = loadConfig(process.env, process.stdout.isTTY === true, { existingStore: true });
    const store = await openStore(storeLocation(config));
    try {
      // Exit 0 says every sealed value is under SECRETS_KEY: only true of the columns it knows.
      await store.refuseNotCurrent();
      const report = await rotateSealedValues(store.db, openingKeys(config), { stop: stop.signal });
      if (report.stopped) return interrupted(report, stop.caught()!, json);
      print(report, json);
      return report.unreadable.length > 0 || report.changing.length > 0 ? 1 : 0;
    } finally {
      await store.close();
    }
  } catch (err) {
    if (err instanceof StoreInUseError) {
      return fail(
        4,
        "store_in_use",
        `pulse secrets rotate: the embedded store ${err.dir} is in use by pid ${err.owner.pid} (${err.owner.command}), and PGlite allows one process; stop it, then run this again`,
      );
    }
    if (err instanceof ConfigError || err instanceof StartupError) return fail(COULD_NOT_RUN, "failed", err.message);
    // Each batch is one statement, so what was re-sealed so far stays so; running again goes on
    // from there.
    const storeFailed = storeFailedLine("pulse secrets rotate", err, "what was re-sealed stays so: run it again once the store answers");
    if (storeFailed) return fail(COULD_NOT_RUN, "store_unavailable", storeFailed);
    // Unforeseen: a failed statement's bound values are sealed values here (unforeseen.ts).
    printUnforeseen(err, json);
    return COULD_NOT_RUN;
  } finally {
    stop.off();
  }
}
