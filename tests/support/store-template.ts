// vitest's global setup: one metadata store migrated once per run, which each harness's store
// is copied from (CREATE DATABASE ... TEMPLATE) instead of migrating a fresh database: 110-130 ms
// a harness against 13 ms, and a run makes hundreds. Named uniquely and dropped at the end, so
// runs side by side share nothing; each copy is still the harness's own database. A run that
// was killed never reaches its end: the next run's setup drops what it left (dropStaleTemplates).

import pg from "pg";

import { openStore } from "../../src/store/client.js";
import { createPgDatabase, PG, pgAdmin, untilPulseDisconnected } from "./services.js";

/** The environment variable naming the template for the test workers (which vitest starts
 * after this setup, with its environment). */
export const STORE_TEMPLATE = "PULSE_TEST_STORE_TEMPLATE";

const TEMPLATE_PREFIX = "pulse_store_template";

/** How old a template must be before a run that finds it unmarked and unused may drop it: a run
 * marks its own a moment after making it, and runs of a Pulse from before the mark (which do
 * not) take well under this, the whole suite included. */
export const STALE_TEMPLATE_MS = 60 * 60_000;

export async function setup(): Promise<() => Promise<void>> {
  await dropStaleTemplates();
  const template = await createPgDatabase(TEMPLATE_PREFIX);
  // The run's mark on its template: a session named after it, idle on another database (one on
  // the template would keep it from being copied). It ends with this process, however that
  // ends, and with it the mark.
  const mark = new pg.Client({ ...PG, database: "postgres", application_name: template.name });
  // A server restart ends the session: the run goes on unmarked, still within STALE_TEMPLATE_MS.
  mark.on("error", () => undefined);
  await mark.connect();
  const store = await openStore({ databaseUrl: template.url, queryTimeoutMs: 30_000 });
  try {
    await store.migrate();
  } finally {
    await store.close();
  }
  // PostgreSQL copies no database with sessions on it.
  if (!(await untilPulseDisconnected(template.name))) throw new Error(`sessions on ${template.name} did not end`);
  process.env[STORE_TEMPLATE] = template.name;
  return async () => {
    await template.drop();
    await mark.end();
  };
}

/** Drops the templates named `prefix`_<base-36 time>_<hex> (createPgDatabase's names) older than
 * STALE_TEMPLATE_MS that no session is on and none names: left by runs that were killed. */
export async function dropStaleTemplates(prefix = TEMPLATE_PREFIX): Promise<void> {
  const rows = await pgAdmin<{ datname: string }>(
    `SELECT datname FROM pg_database d WHERE starts_with(datname, $1)
       AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname OR a.application_name = d.datname)`,
    "postgres",
    [`${prefix}_`],
  );
  const named = new RegExp(`^${prefix}_([0-9a-z]+)_[0-9a-f]{8}$`);
  for (const { datname } of rows) {
    // NaN for a name not made so, which stays.
    const made = parseInt(named.exec(datname)?.[1] ?? "", 36);
    if (!(Date.now() - made > STALE_TEMPLATE_MS)) continue;
    // Without FORCE: a session that came since (a run copying it) makes the drop fail, and the
    // template stays; so does one another run's setup dropped first.
    await pgAdmin(`DROP DATABASE IF EXISTS "${datname}"`, "postgres").catch(() => undefined);
  }
}
