// GET /databases/{id}/schema on a large schema, repeated: what each request costs the server
// once the schema is cached. Before, every request wrote the whole snapshot as JSON anew; now
// the JSON answer is kept with the schema. With BENCH_BASELINE_CHECKOUT (another built checkout)
// both versions are measured in one run, in alternating rounds.
// Run: npm run build && npx tsx bench/schema-get.ts   (TABLES, COLUMNS, REQUESTS, ROUNDS)

import { randomBytes } from "node:crypto";

import pg from "pg";

import { cpuMs, machine, median, productionEnv, root, startServer, tempDir, type ServerProcess } from "./lib.js";

const TABLES = Number(process.env.TABLES ?? 4000);
const COLUMNS = Number(process.env.COLUMNS ?? 30);
const REQUESTS = Number(process.env.REQUESTS ?? 20);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const baseline = process.env.BENCH_BASELINE_CHECKOUT;

const admin = new pg.Client({ host: "127.0.0.1", user: "postgres", database: "test" });
await admin.connect();
const suffix = randomBytes(4).toString("hex");
const target = `pulse_bench_schema_${suffix}`;
await admin.query(`CREATE DATABASE ${target}`);
const created: string[] = [target];

interface Side {
  name: string;
  server: ServerProcess;
  url: string;
  auth: Record<string, string>;
  bytes: number;
}

async function side(name: string, checkout: string): Promise<Side> {
  const metaDb = `pulse_bench_meta_${randomBytes(4).toString("hex")}`;
  await admin.query(`CREATE DATABASE ${metaDb}`);
  created.push(metaDb);
  const server = await startServer({ DATA_DIR: tempDir("pulse-bench-schema-"), ...productionEnv(metaDb, 4) }, checkout);
  const email = `bench-${randomBytes(4).toString("hex")}@example.com`;
  await fetch(`${server.url}/users/`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: "B", email, password: "bench password" }) });
  const login = await fetch(`${server.url}/login`, { method: "POST", body: new URLSearchParams({ username: email, password: "bench password" }) });
  const auth = { authorization: `Bearer ${((await login.json()) as { access_token: string }).access_token}` };
  const added = await fetch(`${server.url}/databases/add_db_connection`, {
    method: "POST",
    headers: { "content-type": "application/json", ...auth },
    body: JSON.stringify({ db_type: "postgresql", host: "127.0.0.1", port: 5432, database_name: target, username: "postgres", db_password: "x" }),
  });
  const id = ((await added.json()) as { db_connection: { id: number } }).db_connection.id;
  const url = `${server.url}/databases/${id}/schema`;
  const first = await fetch(url, { headers: auth });
  if (first.status !== 200) throw new Error(`${name}: GET schema answered ${first.status}: ${(await first.text()).slice(0, 300)}`);
  return { name, server, url, auth, bytes: (await first.arrayBuffer()).byteLength };
}

/** REQUESTS GETs one after another: the server's CPU per request and the median time of one. */
async function round(s: Side): Promise<{ cpuMs: number; ms: number }> {
  const cpuBefore = cpuMs(s.server.child.pid);
  const times: number[] = [];
  for (let i = 0; i < REQUESTS; i++) {
    const started = performance.now();
    const res = await fetch(s.url, { headers: s.auth });
    await res.arrayBuffer();
    times.push(performance.now() - started);
  }
  return { cpuMs: (cpuMs(s.server.child.pid) - cpuBefore) / REQUESTS, ms: median(times) };
}

const sides: Side[] = [];
try {
  const target_ = new pg.Client({ host: "127.0.0.1", user: "postgres", database: target });
  await target_.connect();
  const columns = Array.from({ length: COLUMNS - 1 }, (_, c) => `column_number_${c} varchar(255)`).join(", ");
  // In transactions of 200 tables: one transaction would take more locks than the server's table holds.
  for (let from = 1; from <= TABLES; from += 200) {
    const to = Math.min(TABLES, from + 199);
    await target_.query(`DO $$ BEGIN FOR i IN ${from}..${to} LOOP EXECUTE format('CREATE TABLE table_%s (id bigint PRIMARY KEY, ${columns})', i); END LOOP; END $$`);
  }
  await target_.end();

  sides.push(await side("now", root));
  if (baseline) sides.push(await side(`baseline ${baseline}`, baseline));
  for (const s of sides) await round(s); // warm-up
  const results = new Map(sides.map((s) => [s.name, [] as { cpuMs: number; ms: number }[]]));
  for (let r = 0; r < ROUNDS; r++) for (const s of r % 2 === 0 ? sides : [...sides].reverse()) results.get(s.name)!.push(await round(s));

  console.log(`machine: ${machine()}; ${TABLES} tables x ${COLUMNS} columns; ${ROUNDS} alternating rounds of ${REQUESTS} GETs one after another (medians)`);
  console.log("| server | answer, MB | server CPU per GET, ms | time per GET, ms |");
  console.log("|---|---:|---:|---:|");
  for (const s of sides) {
    const of = (pick: (m: { cpuMs: number; ms: number }) => number) => median(results.get(s.name)!.map(pick));
    console.log(`| ${s.name} | ${(s.bytes / 1e6).toFixed(1)} | ${of((m) => m.cpuMs).toFixed(1)} | ${of((m) => m.ms).toFixed(1)} |`);
  }
} finally {
  for (const s of sides) await s.server.stop();
  for (const db of created) await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
  await admin.end();
}
