// 1,000 monitored tables at a one-minute interval on PostgreSQL (a fresh database of 1,000
// small tables, a fresh metadata database whose volume checks already hold a full baseline
// window of history): the scheduler's CPU as a share of one core, the statements each check
// sends to the monitored database, how punctually tables run, what baselines cost, and the
// seconds from data stopping to the alert and to its webhook notification.
// Run: npx tsx bench/monitoring.ts [--tables 1000] [--minutes 5]

import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";

import pg from "pg";

import { createApp } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import { GuardedConnector } from "../src/connectors/guarded.js";
import { createLogger } from "../src/logger.js";
import { createBaselineCache, REUSE_POLICY } from "../src/monitoring/baseline-cache.js";
import { BASELINE_DEFAULTS, judgeBaseline, type MetricPoint } from "../src/monitoring/baselines.js";
import { createScheduler } from "../src/monitoring/scheduler.js";
import { buildDeps, closeDeps } from "../src/lifecycle.js";
import { historyOf } from "../tests/support/history.js";
import { LOCAL_RECEIVER_ENV, startWebhookReceiver } from "../tests/support/webhook-receiver.js";
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
/** Past volume runs seeded per table: the baseline window (BASELINE_DEFAULTS.window.points). */
const SEEDED_POINTS = BASELINE_DEFAULTS.window.points;

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
    ...LOCAL_RECEIVER_ENV, // the webhook receiver listens on 127.0.0.1
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

  // A week of monitoring already behind every table: each volume check gets the baseline
  // window's worth of past runs (SEEDED_POINTS at the interval plus its jitter) and one run
  // eight days ago marking when its series began, so every judgement in the measured window
  // is a full one (trained models, not "learning"). Values wander around the tables' real
  // 100 rows, so the live ones are normal.
  log(`seeding ${SEEDED_POINTS} past volume runs per table`);
  const seededAt = Date.now();
  await sql(
    metaDb,
    `INSERT INTO check_runs (table_id, check_key, check_kind, status, value, anomalous, message, trigger, started_at, finished_at)
     SELECT t.id, 'volume', 'volume', 'pass', 98 + (t.id * 7919 + g * 104729) % 5, false, 'seeded', 'schedule', at, at
       FROM monitored_tables t,
            LATERAL (SELECT g, to_timestamp(($1::float8 - g * 63000 - (g * 7) % 3000) / 1000) AS at FROM generate_series(1, $2::int) g
                     UNION ALL SELECT 0, to_timestamp(($1::float8 - 8 * 86400000) / 1000)) s`,
    [seededAt, SEEDED_POINTS],
  );
  await sql(metaDb, "ANALYZE check_runs");

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
    return { at: performance.now(), cpu: process.cpuUsage(), guarded, targetXacts: Number(target!.xacts), metaXacts: Number(meta!.xacts), runs: Number(runs!.n),
      baselines: { ...deps.monitoring.baselines.stats } };
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

  const [alert] = await sql<{ opened_at: Date }>(metaDb, "SELECT a.opened_at FROM alerts a JOIN monitored_tables t ON t.id = a.table_id WHERE t.table_name = $1 AND a.check_key = 'freshness:ts'", [name(1)]);
  // Its volume check may alert too (rows kept arriving above the seeded history's level).
  const notified = hooks.received.find((r) => r.body?.event === "alert.opened" && r.body?.table?.name === name(1) && r.body?.check === "freshness:ts");
  const gaps = await sql<{ gap: number }>(
    metaDb,
    `SELECT extract(epoch FROM started_at - lag(started_at) OVER (PARTITION BY table_id ORDER BY started_at))::float8 AS gap
       FROM check_runs WHERE check_key = 'volume' AND message <> 'seeded'`,
  );
  const intervals = gaps.map((g) => g.gap).filter((g) => g !== null);
  const statuses = await sql<{ status: string; n: string }>(metaDb, "SELECT status, count(*) AS n FROM check_runs WHERE message <> 'seeded' GROUP BY status ORDER BY status");
  const [pgVersion] = await sql<{ server_version: string }>("postgres", "SHOW server_version");
  await closeDeps(deps);

  // The baseline math apart from the store: one training on a full window (what every
  // judgement cost before trainings were reused), and the steady state of the cache the
  // scheduler judges with, on the same one-minute series streamed point by point.
  const now = Date.now();
  const series = (i: number) => ({ at: now - (1000 - i) * 60_000, value: 1000 + i + (i % 7) });
  const history: MetricPoint[] = [{ at: now - 8 * 86_400_000, value: Number.NaN }, ...Array.from({ length: 1000 }, (_, i) => series(i))];
  const cpuMsSince = (start: NodeJS.CpuUsage) => {
    const used = process.cpuUsage(start);
    return (used.user + used.system) / 1000;
  };
  const mathStart = process.cpuUsage();
  for (let i = 0; i < 200; i++) judgeBaseline(history, { at: now, value: 2000 }, {});
  const judgeMs = cpuMsSince(mathStart) / 200;
  const cache = createBaselineCache();
  const since = historyOf(history);
  const streamed = 3000;
  const cacheStart = process.cpuUsage();
  for (let i = 1000; i < 1000 + streamed; i++) {
    const point = series(i);
    cache.judgeSync("bench", point, {}, since);
    history.push(point);
  }
  const cachedUs = (cpuMsSince(cacheStart) * 1000) / streamed;

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
  const judged = after.baselines.judgements - before.baselines.judgements;
  const trainings = after.baselines.trainings - before.baselines.trainings;
  console.log(`| baseline judgements in the window / trainings among them | ${judged} / ${trainings} (one per ${(judged / Math.max(1, trainings)).toFixed(1)}) |`);
  console.log(`| history points read from the store per judgement | ${((after.baselines.pointsLoaded - before.baselines.pointsLoaded) / judged).toFixed(1)} |`);
  const cpu = after.baselines.cpuMs - before.baselines.cpuMs;
  const trainingCpu = after.baselines.trainingCpuMs - before.baselines.trainingCpuMs;
  const judgingUs = (1000 * (cpu - trainingCpu)) / judged;
  const trainingMs = trainings > 0 ? trainingCpu / trainings : Number.NaN;
  const steadyUs = judgingUs + (1000 * trainingMs) / (REUSE_POLICY.maxPoints + 1);
  console.log(`| in-process CPU per judgement in the window, training and judging (not loading) | ${((1000 * cpu) / judged).toFixed(0)} µs |`);
  console.log(`| of which: judging, per judgement / training, per training | ${judgingUs.toFixed(0)} µs / ${trainingMs.toFixed(2)} ms |`);
  console.log(`| so at one training per ${REUSE_POLICY.maxPoints + 1} judgements (a one-minute check's steady state) | ${steadyUs.toFixed(0)} µs per judgement |`);
  console.log(`| measured apart (CPU): one training + judgement on 1,000 points / cached, streamed | ${judgeMs.toFixed(2)} ms / ${cachedUs.toFixed(0)} µs |`);
  console.log(`| check outcomes over the whole run | ${statusText} |`);
  console.log("");
  console.log(`Each guarded statement is BEGIN READ ONLY, SET LOCAL statement_timeout (the monitoring timeout), the statement and ROLLBACK in one pipelined round trip; transactions per check also include the probe (primary or replica, once a minute per connection). Every volume check starts with a full window of history (${SEEDED_POINTS} seeded runs and a first run eight days back), so every judgement is a full one; trainings are reused for up to ${REUSE_POLICY.maxPoints} points or ${REUSE_POLICY.maxAgeMs / 60_000} minutes (src/monitoring/baseline-cache.ts).`);
} finally {
  await hooks.close();
  await sql("postgres", `DROP DATABASE IF EXISTS "${metaDb}" WITH (FORCE)`).catch(() => {});
  await sql("postgres", `DROP DATABASE IF EXISTS "${targetDb}" WITH (FORCE)`).catch(() => {});
  rmSync(dataDir, { recursive: true, force: true });
}
