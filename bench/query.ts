// POST /query through HTTP + auth + session + guard + read-only transaction, against the floor
// (bench/floor-server.ts: bare Hono + plain pg pool), same load generator and concurrency, on
// Chinook in PostgreSQL. Run: npm run build && npx tsx bench/query.ts
// ROUNDS (default 5) rounds of DURATION seconds (default 4) per server, alternating servers
// within each round, reported as medians: this machine's load drifts over a run, and
// alternation exposes every server to the same drift.
// A/B against another version: git worktree add ../base <rev>, build it there, then
// BENCH_BASELINE_CHECKOUT=../base npx tsx bench/query.ts

import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import path from "node:path";
import pg from "pg";

import { loadChinookPostgres } from "../tests/support/chinook.js";
import { machine, loadPost, median, productionEnv, root, startServer, tempDir } from "./lib.js";

const DURATION = Number(process.env.DURATION ?? 4);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 10);
const POOL_SIZE = 10;
const QUERIES = {
  "1 row": "SELECT track_id, name, milliseconds FROM track WHERE track_id = 42",
  "1,000 rows": "SELECT track_id, name, composer, milliseconds, unit_price FROM track ORDER BY track_id LIMIT 1000",
};

const load = (pid: number | undefined, url: string, body: unknown, headers: Record<string, string> = {}) =>
  loadPost(pid, url, body, headers, { duration: DURATION, connections: CONNECTIONS });

const chinook = await loadChinookPostgres();
const admin = new pg.Client({ host: "127.0.0.1", user: "postgres", database: "test" });
await admin.connect();
const metaDbs: string[] = [];

/** A Pulse server on its own metadata database, with a user logged in and connected to Chinook. */
async function startPulse(checkout?: string) {
  const metaDb = `pulse_bench_meta_${randomBytes(4).toString("hex")}`;
  await admin.query(`CREATE DATABASE ${metaDb}`);
  metaDbs.push(metaDb);
  const server = await startServer(
    {
      DATA_DIR: tempDir("pulse-bench-query-"),
      ...productionEnv(metaDb, POOL_SIZE),
    },
    checkout,
  );
  const email = `bench-${randomBytes(4).toString("hex")}@example.com`;
  await fetch(`${server.url}/users/`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: "B", email, password: "bench password" }) });
  const login = await fetch(`${server.url}/login`, { method: "POST", body: new URLSearchParams({ username: email, password: "bench password" }) });
  const { access_token: token } = (await login.json()) as { access_token: string };
  const auth = { authorization: `Bearer ${token}` };
  const added = await fetch(`${server.url}/databases/add_db_connection`, {
    method: "POST",
    headers: { "content-type": "application/json", ...auth },
    body: JSON.stringify({ db_type: "postgresql", host: "127.0.0.1", port: 5432, database_name: chinook.name, username: "postgres", db_password: "x" }),
  });
  const connectionId = ((await added.json()) as { db_connection: { id: number } }).db_connection.id;
  await fetch(`${server.url}/databases/connect_db/${connectionId}`, { method: "POST", headers: auth });
  // An API key for the same connection, where the checkout has them (a baseline may not).
  const created = await fetch(`${server.url}/api/keys`, {
    method: "POST",
    headers: { "content-type": "application/json", ...auth },
    body: JSON.stringify({ name: "bench", scopes: ["query"], connection_ids: [connectionId] }),
  });
  const keyAuth = created.status === 201 ? { authorization: `Bearer ${((await created.json()) as { key: string }).key}` } : null;
  return { server, auth, keyAuth, connectionId };
}

const floorPort = 19_500 + Math.floor(Math.random() * 400);
const floor = spawn(process.execPath, ["--import", "tsx", path.join(root, "bench/floor-server.ts")], {
  env: { ...process.env, PORT: String(floorPort), DATABASE_URL: chinook.url, POOL_SIZE: String(POOL_SIZE) },
  stdio: "inherit",
});
const pulse = await startPulse();
// BENCH_BASELINE_CHECKOUT: another built checkout (e.g. a git worktree of the last commit),
// measured in the same run for an A/B ratio less exposed to the machine's noise.
const baselineCheckout = process.env.BENCH_BASELINE_CHECKOUT;
const baseline = baselineCheckout ? await startPulse(baselineCheckout) : null;

try {
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${floorPort}/health`)).ok) break;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  const rows: string[] = [];
  type Pulse = Awaited<ReturnType<typeof startPulse>>;
  type Measured = Awaited<ReturnType<typeof load>>;
  const pulses = [["Pulse", pulse], [`baseline ${baselineCheckout}`, baseline]].filter((e): e is [string, Pulse] => e[1] !== null);
  for (const [label, sql] of Object.entries(QUERIES)) {
    const runs = new Map<string, () => Promise<Measured>>([["floor (Hono + pg)", () => load(floor.pid, `http://127.0.0.1:${floorPort}/query`, { sql })]]);
    for (const [name, p] of pulses) {
      const url = `${p.server.url}/query`;
      runs.set(`${name} /query (session)`, () => load(p.server.child.pid, url, { sql }, p.auth));
      runs.set(`${name} /query (connection_id)`, () => load(p.server.child.pid, url, { sql, connection_id: p.connectionId }, p.auth));
      const { keyAuth } = p;
      if (keyAuth) runs.set(`${name} /query (connection_id, API key)`, () => load(p.server.child.pid, url, { sql, connection_id: p.connectionId }, keyAuth));
    }
    for (const run of runs.values()) await run(); // warm-up: JIT, pools
    const results = new Map<string, Measured[]>([...runs.keys()].map((k) => [k, []]));
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? [...runs] : [...runs].reverse();
      for (const [name, run] of order) results.get(name)!.push(await run());
    }
    const of = (name: string, pick: (m: Measured) => number) => median(results.get(name)!.map(pick));
    const floorRps = of("floor (Hono + pg)", (m) => m.rps);
    for (const name of runs.keys()) {
      const rps = of(name, (m) => m.rps);
      rows.push(
        `| ${label} | ${name} | ${rps.toFixed(0)} | ${of(name, (m) => m.p50)} | ${of(name, (m) => m.p99)} | ${(rps / floorRps).toFixed(2)}x | ${of(name, (m) => m.cpuUs).toFixed(0)} |`,
      );
    }
  }
  console.log(`machine: ${machine()}; autocannon ${CONNECTIONS} connections, ${ROUNDS} alternating rounds of ${DURATION} s (medians), pools of ${POOL_SIZE} on both sides`);
  console.log("| result | server | req/s | p50 ms | p99 ms | throughput vs floor | server CPU per request, µs |");
  console.log("|---|---|---:|---:|---:|---:|---:|");
  for (const row of rows) console.log(row);
} finally {
  for (const p of [pulse, baseline]) await p?.server.stop();
  floor.kill("SIGTERM");
  for (const db of metaDbs) await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
  await admin.end();
  await chinook.drop();
}
