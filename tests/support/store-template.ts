// vitest's global setup: one metadata store migrated once per run, which each harness's store
// is copied from (CREATE DATABASE ... TEMPLATE) instead of migrating a fresh database: 110-130 ms
// a harness against 13 ms, and a run makes hundreds. Named uniquely and dropped at the end, so
// runs side by side share nothing; each copy is still the harness's own database. A run that
// was killed never reaches its end: the next run's setup drops what it left, its template and
// the PostgreSQL and MariaDB databases its tests made (dropStaleDatabases).

import pg from "pg";

import { openStore } from "../../src/store/client.js";
import { createPgDatabase, mariaAdmin, PG, pgAdmin, untilPulseDisconnected } from "./services.js";

/** The environment variable naming the template for the test workers (which vitest starts
 * after this setup, with its environment). */
export const STORE_TEMPLATE = "PULSE_TEST_STORE_TEMPLATE";

const TEMPLATE_PREFIX = "pulse_store_template";

/** How old a database must be before a run that finds it unmarked and unused may drop it: a run
 * marks its template a moment after making it, and runs of a Pulse from before the mark (which do
 * not) take well under this, the whole suite included. */
export const STALE_DATABASE_MS = 60 * 60_000;

/** What the tests' databases are named (createPgDatabase, createMariaDatabase). */
const TEST_PREFIX = "pulse_";

export async function setup(): Promise<() => Promise<void>> {
  await dropStaleDatabases();
  const template = await createPgDatabase(TEMPLATE_PREFIX);
  // The run's mark on its template: a session named after it, idle on another database (one on
  // the template would keep it from being copied). It ends with this process, however that
  // ends, and with it the mark.
  const mark = new pg.Client({ ...PG, database: "postgres", application_name: template.name });
  // A server restart ends the session: the run goes on unmarked, still within STALE_DATABASE_MS.
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

/** When a name uniqueName made (`prefix`_<base-36 time, 8 digits>_<8 hex>) says it was made; NaN
 * for another name, which is never dropped. */
function madeAt(name: string): number {
  return parseInt(/_([0-9a-z]{8})_[0-9a-f]{8}$/.exec(name)?.[1] ?? "", 36);
}

/** Drops the databases named `prefix`..._<base-36 time>_<hex> (uniqueName's), on PostgreSQL and
 * MariaDB, that killed runs left: older than STALE_DATABASE_MS, made before every run still
 * marked began (a run's databases come after its mark, so one made before is no live run's,
 * however long it runs), and that no session is on (nor, on PostgreSQL, names: a run's mark). */
export async function dropStaleDatabases(prefix = TEST_PREFIX): Promise<void> {
  const marks = await pgAdmin<{ name: string }>("SELECT application_name AS name FROM pg_stat_activity WHERE starts_with(application_name, $1)", "postgres", [`${TEMPLATE_PREFIX}_`]);
  const oldestRun = Math.min(...marks.map((m) => madeAt(m.name)).filter(Number.isFinite));
  // NaN (a name not made so) compares false: it stays.
  const stale = (name: string) => Date.now() - madeAt(name) > STALE_DATABASE_MS && madeAt(name) < oldestRun;

  const pgUnused = await pgAdmin<{ datname: string }>(
    `SELECT datname FROM pg_database d WHERE starts_with(datname, $1)
       AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname OR a.application_name = d.datname)`,
    "postgres",
    [prefix],
  );
  for (const { datname } of pgUnused.filter((d) => stale(d.datname))) {
    // Without FORCE: a session that came since (a run copying a template) makes the drop fail,
    // and the database stays; so does one another run's setup dropped first.
    await pgAdmin(`DROP DATABASE IF EXISTS "${datname}"`, "postgres").catch(() => undefined);
  }

  // MariaDB drops a database a connection is on; none is, but one may come between the two
  // statements: only to a database older than STALE_DATABASE_MS, which no live run uses. A run
  // without MariaDB (its tests skipped or failing on their own) is not stopped here.
  const mariaUnused = await mariaAdmin<{ name: string }>(
    `SELECT schema_name AS name FROM information_schema.schemata
      WHERE LEFT(schema_name, ${prefix.length}) = '${prefix}'
        AND schema_name NOT IN (SELECT db FROM information_schema.processlist WHERE db IS NOT NULL)`,
  ).catch(() => []);
  for (const { name } of mariaUnused.filter((d) => stale(d.name))) await mariaAdmin(`DROP DATABASE IF EXISTS \`${name}\``).catch(() => undefined);
}
