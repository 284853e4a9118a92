// 1,000 monitored tables at a one-minute interval on PostgreSQL (a fresh database of 1,000
// small tables, a fresh metadata database): the scheduler's CPU as a share of one core, the
// statements each check sends to the monitored database, how punctually tables run, and the
// seconds from data stopping to the alert and to its webhook notification.
// Run: npx tsx bench/monitoring.ts [--tables 1000] [--minutes 5]

import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";

import pg from "pg";

import { createApp } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import { GuardedConnector } from "../src/connectors/guarded.js";
import { createLogger } from "../src/logger.js";
import { judgeBaseline } from "../src/monitoring/baselines.js";
import { createScheduler } from "../src/monitoring/scheduler.js";
import { buildDeps, closeDeps } from "../src/service.js";
import { startWebhookReceiver } from "../tests/support/webhook-receiver.js";
import { machine, percentile, tempDir } from "./lib.js";

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const TABLES = arg("tables", 1000);
const MINUTES = arg("minutes", 5);
const PG_HOST = process.env.BENCH_PG_HOST ?? "127.0.0.1";
const PG_PORT = Number(process.env.BENCH_PG_PORT ?? 5432);
const PG_USER = process.env.BENCH_PG_USER ?? "postgres";
/** Warm-up left out of the CPU figure: every table's first run, pools and introspection. */
const WARMUP_MS = 75_000;
/** The watched table's rows stop arriving this long after the scheduler starts. */
const STOP_AFTER_MS = 40_000;
const WATCHED_MAX_LAG_S = 60;

const url = (db: string) => `postgresql://${PG_USER}@${PG_HOST}:${PG_PORT}/${db}`;
async function sql<T extends pg.QueryResultRow = pg.QueryResultRow>(db: string, text: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url(db) });
  await client.connect();
  try {
    return (await client.query<T>(text, params)).rows;
  } finally {
    await client.end();
  }
}

const stamp = `${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`;
const metaDb = `pulse_bench_meta_${stamp}`;
const targetDb = `pulse_bench_target_${stamp}`;
const name = (i: number) => `t${String(i).padStart(4, "0")}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (text: string) => process.stderr.write(`${new Date().toISOString()} ${text}\n`);

await sql("postgres", `CREATE DATABASE "${metaDb}"`);
await sql("postgres", `CREATE DATABASE "${targetDb}"`);
const dataDir = tempDir("pulse-bench-monitoring-");
const hooks = await startWebhookReceiver();

try {
  log(`creating ${TABLES} tables of 100 rows`);
  await sql(
    targetDb,
    `DO $$ BEGIN FOR i IN 1..${TABLES} LOOP
       EXECUTE format('CREATE TABLE %I (id serial PRIMARY KEY, ts timestamptz NOT NULL DEFAULT now(), v int)', 't' || lpad(i::text, 4, '0'));
       EXECUTE format('INSERT INTO %I (v) SELECT g FROM generate_series(1, 100) g', 't' || lpad(i::text, 4, '0'));
     END LOOP; END $$`,
  );

  const config = loadConfig({
    NODE_ENV: "test",
    DATA_DIR: dataDir,
    DATABASE_URL: url(metaDb),
    JWT_SECRET: randomBytes(32).toString("hex"),
    SECRETS_KEY: randomBytes(32).toString("hex"),
    BCRYPT_ROUNDS: "4",
    LOG_LEVEL: "warn",
    MONITOR_SCHEDULER: "off", // started below, by hand, to measure it
    MONITOR_TICK_MS: "1000",
    MONITOR_MAX_CONCURRENCY: "8",
    // Two checks per table per minute, plus headroom for the probe and introspection.
    MONITOR_QUERIES_PER_MINUTE: String(TABLES * 3),
  });
  const deps = await buildDeps(config, createLogger("warn"));
  const app = createApp(deps);
  const call = async (method: string, path: string, body?: unknown, token?: string) => {
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    let payload: string | undefined;
    if (body instanceof URLSearchParams) {
      headers["content-type"] = "application/x-www-form-urlencoded";
      payload = body.toString();
    } else if (body !== undefined) {
      headers["content-type"] = "application/json";
      payload = JSON.stringify(body);
    }
    const res = await app.request(path, { method, headers, body: payload });
    const json = (await res.json()) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };

  await call("POST", "/users/", { name: "Bench", email: "bench@example.com", password: "bench password" });
  const { access_token: token } = await call("POST", "/login", new URLSearchParams({ username: "bench@example.com", password: "bench password" }));
  const connection = await call("POST", "/api/connections", { db_type: "postgresql", host: PG_HOST, port: PG_PORT, database_name: targetDb, username: PG_USER, db_password: "unused" }, token);
  await call("POST", "/api/channels", { kind: "webhook", url: `${hooks.url}/bench` }, token);
  log(`monitoring ${TABLES} tables`);
  for (let i = 1; i <= TABLES; i++) {
    await call("POST", "/api/tables", {
      connection_id: connection.id,
      table: name(i),
      interval_seconds: 60,
      checks: [{ kind: "freshness", column: "ts", max_lag_seconds: i === 1 ? WATCHED_MAX_LAG_S : 86_400 }, { kind: "volume" }],
    }, token);
  }

  // Statements the checks send through the guarded connector, by connection.
  let guarded = 0;
  const query = GuardedConnector.prototype.query;
  GuardedConnector.prototype.query = function (this: GuardedConnector, ...args: Parameters<typeof query>) {
    guarded += 1;
    return query.apply(this, args);
  };
  const snapshot = async () => {
    const [target] = await sql<{ xacts: string }>("postgres", "SELECT xact_commit + xact_rollback AS xacts FROM pg_stat_database WHERE datname = $1", [targetDb]);
    const [meta] = await sql<{ xacts: string }>("postgres", "SELECT xact_commit + xact_rollback AS xacts FROM pg_stat_database WHERE datname = $1", [metaDb]);
    const [runs] = await sql<{ n: string }>(metaDb, "SELECT count(*) AS n FROM check_runs");
    return { at: performance.now(), cpu: process.cpuUsage(), guarded, targetXacts: Number(target!.xacts), metaXacts: Number(meta!.xacts), runs: Number(runs!.n) };
  };

  const scheduler = createScheduler(deps, { instanceId: "bench" });
  const startedAt = Date.now();
  scheduler.start();
  log(`scheduler started; rows stop arriving in ${name(1)} after ${STOP_AFTER_MS / 1000} s`);
  let stoppedAt = 0;
  let writes = 0;
  const writer = (async () => {
    while (Date.now() - startedAt < STOP_AFTER_MS) {
      await sql(targetDb, `INSERT INTO ${name(1)} (v) VALUES (1)`);
      writes += 1;
      stoppedAt = Date.now();
      await sleep(5000);
    }
  })();

  await sleep(WARMUP_MS);
  const before = await snapshot();
  const writesBefore = writes;
  log("warm-up over; measuring");
  await sleep(MINUTES * 60_000 - WARMUP_MS);
  const after = await snapshot();
  await writer;
  await scheduler.stop();
  GuardedConnector.prototype.query = query;

  const [alert] = await sql<{ opened_at: Date }>(metaDb, "SELECT a.opened_at FROM alerts a JOIN monitored_tables t ON t.id = a.table_id WHERE t.table_name = $1 AND a.check_key = 'freshness'", [name(1)]);
  const notified = hooks.received.find((r) => r.body?.event === "alert.opened" && r.body?.table?.name === name(1));
  const gaps = await sql<{ gap: number }>(
    metaDb,
    `SELECT extract(epoch FROM started_at - lag(started_at) OVER (PARTITION BY table_id ORDER BY started_at))::float8 AS gap
       FROM check_runs WHERE check_key = 'volume'`,
  );
  const intervals = gaps.map((g) => g.gap).filter((g) => g !== null);
  const statuses = await sql<{ status: string; n: string }>(metaDb, "SELECT status, count(*) AS n FROM check_runs GROUP BY status ORDER BY status");
  const [pgVersion] = await sql<{ server_version: string }>("postgres", "SHOW server_version");
  await closeDeps(deps);

  // The baseline math a table costs once it has a week of one-minute history (not reached in
  // a few minutes of bench): measured apart, on 1,000 points, seasonality "auto".
  const now = Date.now();
  const history = Array.from({ length: 1000 }, (_, i) => ({ at: now - (1000 - i) * 60_000, value: 1000 + i + (i % 7) }));
  history.unshift({ at: now - 8 * 86_400_000, value: Number.NaN });
  const mathStart = performance.now();
  for (let i = 0; i < 200; i++) judgeBaseline(history, { at: now, value: 2000 }, {});
  const judgeMs = (performance.now() - mathStart) / 200;

  const wallMs = after.at - before.at;
  const cpuMs = (after.cpu.user - before.cpu.user + after.cpu.system - before.cpu.system) / 1000;
  const checks = after.runs - before.runs;
  const tableRuns = checks / 2;
  const targetXacts = after.targetXacts - before.targetXacts - (writes - writesBefore);
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const statusText = statuses.map((s) => `${s.status} ${s.n}`).join(", ");

  console.log(`## Monitoring: ${TABLES} tables at a 1-minute interval on PostgreSQL`);
  console.log("");
  console.log(`Command: \`npx tsx bench/monitoring.ts --tables ${TABLES} --minutes ${MINUTES}\``);
  console.log(`Machine: ${machine()}, PostgreSQL ${pgVersion!.server_version} on the same host`);
  console.log(`Settings: MONITOR_TICK_MS=1000, MONITOR_MAX_CONCURRENCY=8, per-connection concurrency 1, one connection for all tables; checks per table: freshness (fixed limit) + volume (baseline)`);
  console.log("");
  console.log("| figure | value |");
  console.log("|---|---:|");
  console.log(`| measured window (after ${WARMUP_MS / 1000} s warm-up) | ${(wallMs / 1000).toFixed(0)} s |`);
  console.log(`| scheduler process CPU, share of one core | ${pct(cpuMs / wallMs)} |`);
  console.log(`| check runs in the window | ${checks} |`);
  console.log(`| table runs per minute (steady state: ${TABLES} × 60 s / time between runs) | ${((tableRuns * 60_000) / wallMs).toFixed(0)} |`);
  const userMs = (after.cpu.user - before.cpu.user) / 1000;
  console.log(`| CPU per table run (2 checks): user + system | ${(userMs / tableRuns).toFixed(2)} + ${((cpuMs - userMs) / tableRuns).toFixed(2)} ms |`);
  console.log(`| statements sent by checks to the monitored database, per check | ${((after.guarded - before.guarded) / checks).toFixed(3)} |`);
  console.log(`| monitored-database transactions per check (pg_stat_database) | ${(targetXacts / checks).toFixed(2)} |`);
  console.log(`| metadata-store transactions per table run (pg_stat_database) | ${((after.metaXacts - before.metaXacts) / tableRuns).toFixed(1)} |`);
  console.log(`| time between runs of a table, p50 / p99 / max | ${percentile(intervals, 50).toFixed(1)} / ${percentile(intervals, 99).toFixed(1)} / ${Math.max(...intervals).toFixed(1)} s |`);
  console.log(`| data stopped → alert open (limit ${WATCHED_MAX_LAG_S} s, 2 failures to open) | ${alert ? ((alert.opened_at.getTime() - stoppedAt) / 1000).toFixed(0) + " s" : "no alert"} |`);
  console.log(`| data stopped → webhook received | ${notified ? ((notified.at - stoppedAt) / 1000).toFixed(0) + " s" : "none"} |`);
  console.log(`| baseline judgement on 1,000 points of history (steady state, measured apart) | ${judgeMs.toFixed(2)} ms |`);
  console.log(`| check outcomes over the whole run | ${statusText} |`);
  console.log("");
  console.log("Each guarded statement is BEGIN READ ONLY, SET LOCAL statement_timeout, the statement, ROLLBACK and pg_advisory_unlock_all() in one pipelined round trip; transactions per check also include the probe (primary or replica, once a minute per connection). Volume baselines stay in their learning phase during a bench of minutes; the last-but-one row is what each judgement will add once a table has a week of history.");
} finally {
  await hooks.close();
  await sql("postgres", `DROP DATABASE IF EXISTS "${metaDb}" WITH (FORCE)`).catch(() => {});
  await sql("postgres", `DROP DATABASE IF EXISTS "${targetDb}" WITH (FORCE)`).catch(() => {});
  rmSync(dataDir, { recursive: true, force: true });
}
