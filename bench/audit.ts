// The audit trail's cost: POST /query throughput and latency with AUDIT_TRAIL=on against
// AUDIT_TRAIL=off, SERVERS of each (started alternately), all measured in the same run
// (rotating rounds, medians), on Chinook in PostgreSQL, in two layouts of the processes on the
// CPUs (see `place`); then the audit table's size per million statements of a mix. With the
// store apart, how much a busy store CPU slows the others at all (siblingCheck).
// Several servers of each kind because two identical server processes keep a difference of
// their own through a whole run (up to 10% on the machines of bench/RESULTS.md), as large as
// the effect measured: one server of each compares two processes more than two settings. The
// server is the unit, so the spread among identical servers gives the figure's standard error.
// Run: npm run bench:audit (ROUNDS, default 5, of DURATION seconds, default 4, per server and
// layout; SERVERS, default 3, per setting; LAYOUTS, default both; STATEMENTS, default 20000, for
// the growth).

import autocannon from "autocannon";
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cpus } from "node:os";
import pg from "pg";

import { loadChinookPostgres } from "../tests/support/chinook.js";
import { loadPost, machine, median, productionEnv, startServer, tempDir } from "./lib.js";

const DURATION = Number(process.env.DURATION ?? 4);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 10);
const SERVERS = Number(process.env.SERVERS ?? 3);
if (!(SERVERS >= 2)) throw new Error("SERVERS must be at least 2: the spread among identical servers is the figure's error");
const STATEMENTS = Number(process.env.STATEMENTS ?? 20_000);
const POOL_SIZE = 10;
const LOAD_SQL = "SELECT track_id, name, milliseconds FROM track WHERE track_id = 42";

/** The growth mix: mostly short lookups, some joins and reports, a few refused writes. */
const MIX: [weight: number, sql: string][] = [
  [10, "SELECT track_id, name, milliseconds FROM track WHERE track_id = 42"],
  [6, "SELECT c.first_name, c.last_name, i.invoice_date, i.total FROM customer c JOIN invoice i ON i.customer_id = c.customer_id WHERE c.country = 'Brazil' ORDER BY i.invoice_date DESC LIMIT 20"],
  [
    3,
    `WITH sales AS (
  SELECT il.track_id, sum(il.unit_price * il.quantity) AS revenue, count(*) AS lines
  FROM invoice_line il JOIN invoice i ON i.invoice_id = il.invoice_id
  WHERE i.invoice_date >= '2021-01-01' AND i.invoice_date < '2025-01-01'
  GROUP BY il.track_id
)
SELECT g.name AS genre, ar.name AS artist, count(DISTINCT t.track_id) AS tracks,
       sum(s.revenue) AS revenue, sum(s.lines) AS lines, avg(t.milliseconds) / 1000 AS avg_seconds
FROM sales s
JOIN track t ON t.track_id = s.track_id
JOIN album al ON al.album_id = t.album_id
JOIN artist ar ON ar.artist_id = al.artist_id
LEFT JOIN genre g ON g.genre_id = t.genre_id
WHERE t.milliseconds > 60000
GROUP BY g.name, ar.name
HAVING sum(s.revenue) > 1
ORDER BY revenue DESC, tracks DESC
LIMIT 25`,
  ],
  [1, "DELETE FROM invoice_line WHERE invoice_id = 1"],
];

const chinook = await loadChinookPostgres();
const admin = new pg.Client({ host: "127.0.0.1", user: "postgres", database: "test" });
await admin.connect();
const metaDbs: string[] = [];

/** A Pulse server on its own metadata database, with a user connected to Chinook. */
async function startPulse(auditTrail: "on" | "off") {
  const metaDb = `pulse_bench_audit_${randomBytes(4).toString("hex")}`;
  await admin.query(`CREATE DATABASE ${metaDb}`);
  metaDbs.push(metaDb);
  const server = await startServer({
    DATA_DIR: tempDir("pulse-bench-audit-"),
    ...productionEnv(metaDb, POOL_SIZE),
    AUDIT_TRAIL: auditTrail,
  });
  const email = `bench-${randomBytes(4).toString("hex")}@example.com`;
  await fetch(`${server.url}/users/`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: "B", email, password: "bench password" }) });
  const login = await fetch(`${server.url}/login`, { method: "POST", body: new URLSearchParams({ username: email, password: "bench password" }) });
  const { access_token: token } = (await login.json()) as { access_token: string };
  const headers = { "content-type": "application/json", authorization: `Bearer ${token}` };
  const added = await fetch(`${server.url}/databases/add_db_connection`, {
    method: "POST",
    headers,
    body: JSON.stringify({ db_type: "postgresql", host: "127.0.0.1", port: 5432, database_name: chinook.name, username: "postgres", db_password: "x" }),
  });
  const saved = (await added.json()) as { db_connection?: { id: number } };
  if (!saved.db_connection) throw new Error(`adding the Chinook connection failed: ${added.status} ${JSON.stringify(saved)}`);
  return { server, headers, connectionId: saved.db_connection.id, metaDb, auditTrail };
}

type Pulse = Awaited<ReturnType<typeof startPulse>>;

/** "shared": every process may run on every CPU, so the metadata store's work for the trail
 * competes with the load it is measured against. "store apart": the metadata databases'
 * backends and PostgreSQL's WAL writer, checkpointer and background writer on the last CPU,
 * everything else (autocannon in this process, the servers, Redis, Chinook's backends) on
 * the others: the metadata store on its own machine, as deployed, with Pulse's own part of
 * the trail's cost still measured. */
type Layout = "shared" | "store apart";
// LAYOUTS=shared measures the first alone (what the goal is judged by, and half the time).
const LAYOUTS = (cpus().length > 1 ? (["shared", "store apart"] as const) : (["shared"] as const)).filter((l) => !process.env.LAYOUTS || process.env.LAYOUTS.split(",").includes(l));
const STORE_PROCESSES = new Set(["walwriter", "checkpointer", "background writer"]);

/** Pins the processes for `layout`; run before every round, since pools open new backends. */
async function place(layout: Layout, servers: Pulse[]) {
  const last = cpus().length - 1;
  const all = `0-${last}`;
  const [store, rest] = layout === "shared" ? [all, all] : [String(last), `0-${last - 1}`];
  const pin = (pid: number | undefined, cpuList: string) => {
    if (pid !== undefined) execFileSync("taskset", ["--all-tasks", "--pid", "--cpu-list", cpuList, String(pid)], { stdio: "ignore" });
  };
  const { rows } = await admin.query<{ pid: number; datname: string | null; backend_type: string }>("SELECT pid, datname, backend_type FROM pg_stat_activity");
  for (const row of rows) {
    pin(row.pid, (row.datname !== null && metaDbs.includes(row.datname)) || STORE_PROCESSES.has(row.backend_type) ? store : rest);
  }
  pin(process.pid, rest);
  for (const p of servers) pin(p.server.child.pid, rest);
  for (const pid of execFileSync("pidof", ["redis-server"], { encoding: "utf8" }).trim().split(/\s+/)) pin(Number(pid), rest);
}

/** The CPUs whose work is counted as the machine's: with the store apart, not the store's. */
const countedCpus = (layout: Layout) => (layout === "shared" ? undefined : Array.from({ length: cpus().length - 1 }, (_, i) => i));

const load = (p: Pulse, layout: Layout) =>
  loadPost(p.server.child.pid, `${p.server.url}/query`, { sql: LOAD_SQL, connection_id: p.connectionId }, p.headers, {
    duration: DURATION,
    connections: CONNECTIONS,
    cpuList: countedCpus(layout),
  });

/** STATEMENTS statements of the mix through /query; the audit table's size per statement. */
async function growth(p: Pulse) {
  const meta = new pg.Client({ host: "127.0.0.1", user: "postgres", database: p.metaDb });
  await meta.connect();
  try {
    await meta.query("TRUNCATE audit_groups");
    const bodies = MIX.flatMap(([weight, sql]) => Array.from({ length: weight }, () => JSON.stringify({ sql, connection_id: p.connectionId })));
    const result = await autocannon({
      url: `${p.server.url}/query`,
      method: "POST",
      connections: CONNECTIONS,
      amount: STATEMENTS,
      headers: p.headers,
      requests: bodies.map((body) => ({ body })),
    });
    if (result.errors > 0) throw new Error(`${result.errors} errors`);
    for (let i = 0; i < 100; i++) {
      const { rows } = await meta.query<{ n: string }>("SELECT count(*) AS n FROM audit_records");
      if (Number(rows[0]!.n) >= STATEMENTS) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await meta.query("ANALYZE audit_groups");
    const { rows } = await meta.query<{ n: string; total: string; indexes: string; avg_sql: string }>(
      `SELECT count(*) AS n, pg_total_relation_size('audit_groups') AS total, pg_indexes_size('audit_groups') AS indexes,
              avg(length(sql)) AS avg_sql FROM audit_records`,
    );
    const r = rows[0]!;
    const n = Number(r.n);
    return { n, total: Number(r.total) / n, indexes: Number(r.indexes) / n, avgSql: Number(r.avg_sql) };
  } finally {
    await meta.end();
  }
}

/** How much the store's CPU being busy slows the others on this machine, whatever runs there:
 * the trail-off server with and without a spinning process on the store's CPU (at idle
 * priority, as the store's own work would take it), alternating. Where CPUs are SMT siblings,
 * or a hypervisor's vCPUs share cores, this is far from 1, and "store apart" then charges the
 * store's work to the load's CPUs too. */
async function siblingCheck(p: Pulse) {
  const ratios: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    await place("store apart", servers);
    const quiet = await load(p, "store apart");
    const spinner = spawn("chrt", ["--idle", "0", "taskset", "--cpu-list", String(cpus().length - 1), "sh", "-c", "while :; do :; done"], { stdio: "ignore" });
    try {
      ratios.push((await load(p, "store apart")).rps / quiet.rps);
    } finally {
      spinner.kill("SIGKILL");
    }
  }
  console.log(`\nthe store's CPU kept busy by a spinning process: AUDIT_TRAIL=off throughput ${median(ratios).toFixed(3)} of its own without it (per round: ${ratios.map((r) => r.toFixed(3)).join(", ")})`);
}

type Figures = Awaited<ReturnType<typeof load>>;
const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;

/** Setting `a` against setting `b` by `pick` (per server, its median over the rounds): the
 * ratio of the settings' means, with its standard error from the spread among each setting's
 * identical servers. */
function compare(results: Map<Pulse, Figures[]>, pick: (m: Figures) => number, a: "on" | "off", b: "on" | "off") {
  const perServer = (trail: "on" | "off") => [...results].filter(([p]) => p.auditTrail === trail).map(([, ms]) => median(ms.map(pick)));
  const [xs, ys] = [perServer(a), perServer(b)];
  const relVar = (v: number[]) => v.reduce((t, x) => t + (x - mean(v)) ** 2, 0) / (v.length - 1) / v.length / mean(v) ** 2;
  const ratio = mean(xs) / mean(ys);
  return { ratio, se: ratio * Math.sqrt(relVar(xs) + relVar(ys)) };
}

const servers: Pulse[] = [];
try {
  // Started alternately, so that neither setting has all the first or all the last processes.
  for (let i = 0; i < SERVERS; i++) for (const trail of ["on", "off"] as const) servers.push(await startPulse(trail));
  const name = (p: Pulse) => `AUDIT_TRAIL=${p.auditTrail} #${servers.filter((q) => q.auditTrail === p.auditTrail).indexOf(p) + 1}`;
  console.log(
    `machine: ${machine()}; ${SERVERS} servers per setting; autocannon ${CONNECTIONS} connections, ${ROUNDS} alternating rounds of ${DURATION} s per server (medians); "${LOAD_SQL}" by connection_id`,
  );
  for (const layout of LAYOUTS) {
    await place(layout, servers);
    for (const p of servers) await load(p, layout); // warm-up: JIT, pools
    const results = new Map<Pulse, Figures[]>(servers.map((p) => [p, []]));
    for (let round = 0; round < ROUNDS; round++) {
      // Each server takes each place in the order in turn.
      for (const p of servers.map((_, i, all) => all[(i + round) % all.length]!)) {
        await place(layout, servers);
        results.get(p)!.push(await load(p, layout));
      }
    }
    const cpuName = layout === "shared" ? "machine" : "non-store CPUs'";
    console.log(`\nlayout: ${layout}`);
    console.log(`| server | req/s | p50 ms | p99 ms | server CPU per request, µs | ${cpuName} CPU per request, µs |`);
    console.log("|---|---:|---:|---:|---:|---:|");
    for (const [p, ms] of results) {
      const of = (pick: (m: Figures) => number) => median(ms.map(pick));
      console.log(`| ${name(p)} | ${[of((m) => m.rps).toFixed(0), of((m) => m.p50), of((m) => m.p99), of((m) => m.cpuUs).toFixed(0), of((m) => m.machineCpuUs).toFixed(0)].join(" | ")} |`);
    }
    const rps = compare(results, (m) => m.rps, "on", "off");
    // On a saturated machine throughput is the inverse of the CPU each request costs all of it.
    const cpu = compare(results, (m) => m.machineCpuUs, "off", "on");
    console.log(`throughput on/off: ${rps.ratio.toFixed(3)} ± ${rps.se.toFixed(3)} (standard error, from the spread among identical servers)`);
    console.log(`  by ${cpuName} CPU per request: ${cpu.ratio.toFixed(3)} ± ${cpu.se.toFixed(3)}`);
  }
  const [on, off] = servers as [Pulse, Pulse];
  if (LAYOUTS.includes("store apart")) await siblingCheck(off);
  const g = await growth(on);
  const mb = (bytesPerStatement: number) => ((bytesPerStatement * 1e6) / 2 ** 20).toFixed(0);
  console.log(
    `\naudit table growth after ${g.n} statements of the mix (${MIX.map(([w]) => w).join(":")} short lookup : join : report : refused DELETE; mean stored SQL ${g.avgSql.toFixed(0)} characters):`,
  );
  console.log("| part | bytes per statement | MiB per million statements |");
  console.log("|---|---:|---:|");
  console.log(`| table (heap + TOAST) | ${(g.total - g.indexes).toFixed(0)} | ${mb(g.total - g.indexes)} |`);
  console.log(`| indexes (all of them) | ${g.indexes.toFixed(0)} | ${mb(g.indexes)} |`);
  console.log(`| total | ${g.total.toFixed(0)} | ${mb(g.total)} |`);
} finally {
  // PostgreSQL's own processes outlive the bench: leave them free to run anywhere.
  await place("shared", servers);
  for (const p of servers) await p.server.stop();
  for (const db of metaDbs) await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
  await admin.end();
  await chinook.drop();
}
