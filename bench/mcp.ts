// MCP's cost: run_query through POST /mcp against POST /query for the same 1-row statement on
// Chinook in PostgreSQL, one production-configured server, in one run (alternating rounds,
// medians), as server CPU per request; and the o200k tokens a client pays to put Pulse's tool
// list in its model's context. Run: npm run bench:mcp (ROUNDS, DURATION, CONNECTIONS as in
// bench/query.ts). BENCH_BASELINE_CHECKOUT: another built checkout (a git worktree of an earlier
// commit), whose server is measured in the same rounds, for an A/B in one run.

import { randomBytes } from "node:crypto";
import pg from "pg";
import { Tiktoken } from "js-tiktoken/lite";
import o200k from "js-tiktoken/ranks/o200k_base";

import { loadChinookPostgres } from "../tests/support/chinook.js";
import { machine, loadPost, median, productionEnv, startServer, tempDir } from "./lib.js";

const DURATION = Number(process.env.DURATION ?? 4);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 10);
const POOL_SIZE = 10;
const SQL = "SELECT track_id, name, milliseconds FROM track WHERE track_id = 42";
/** Published for comparison: loading all of Google's MCP Toolbox PostgreSQL tools. */
const TOOLBOX_POSTGRES_TOKENS = 19_000;
const MCP_HEADERS = { accept: "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18" };

const load = (pid: number | undefined, url: string, body: unknown, headers: Record<string, string>) =>
  loadPost(pid, url, body, headers, { duration: DURATION, connections: CONNECTIONS });

const chinook = await loadChinookPostgres();
const admin = new pg.Client({ host: "127.0.0.1", user: "postgres", database: "test" });
await admin.connect();
const metaDbs: string[] = [];
/** Every server started, stopped at the end however the run ends. */
const servers: { stop(): Promise<void> }[] = [];
const rpc = (id: number, method: string, params: Record<string, unknown>) => ({ jsonrpc: "2.0", id, method, params });

/** A production-configured server of `checkout` with a user, Chinook added, and its two loads. */
async function startPulse(checkout?: string) {
  const metaDb = `pulse_bench_meta_${randomBytes(4).toString("hex")}`;
  await admin.query(`CREATE DATABASE ${metaDb}`);
  metaDbs.push(metaDb);
  const server = await startServer({ DATA_DIR: tempDir("pulse-bench-mcp-"), ...productionEnv(metaDb, POOL_SIZE) }, checkout);
  servers.push(server);
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
  const callBody = rpc(2, "tools/call", { name: "run_query", arguments: { connection_id: connectionId, sql: SQL } });
  const probe = await fetch(`${server.url}/mcp`, { method: "POST", headers: { "content-type": "application/json", ...MCP_HEADERS, ...auth }, body: JSON.stringify(callBody) });
  const probed = (await probe.json()) as { result?: { isError?: boolean; structuredContent?: { row_count?: number } } };
  if (probe.status !== 200 || probed.result?.isError || probed.result?.structuredContent?.row_count !== 1) throw new Error(`run_query failed: ${JSON.stringify(probed)}`);
  return {
    server,
    auth,
    query: () => load(server.child.pid, `${server.url}/query`, { sql: SQL, connection_id: connectionId }, auth),
    mcp: () => load(server.child.pid, `${server.url}/mcp`, callBody, { ...MCP_HEADERS, ...auth }),
  };
}

const baselineCheckout = process.env.BENCH_BASELINE_CHECKOUT;
const pulses: [string, Awaited<ReturnType<typeof startPulse>>][] = [];
try {
  pulses.push(["", await startPulse()]);
  if (baselineCheckout) pulses.push([` (baseline ${baselineCheckout})`, await startPulse(baselineCheckout)]);
  const [, pulse] = pulses[0]!;
  const { server, auth } = pulse;

  // The tool list as a client puts it in its model's context: each tool's name, description and
  // input schema (JSON), as tools/list answers them.
  const listed = await fetch(`${server.url}/mcp`, { method: "POST", headers: { "content-type": "application/json", ...MCP_HEADERS, ...auth }, body: JSON.stringify(rpc(1, "tools/list", {})) });
  const { result: list } = (await listed.json()) as { result: { tools: unknown[] } };
  const tokens = new Tiktoken(o200k).encode(JSON.stringify(list.tools)).length;

  type Measured = Awaited<ReturnType<typeof load>>;
  const runs = new Map<string, () => Promise<Measured>>(
    pulses.flatMap(([label, p]) => [
      [`POST /query (connection_id)${label}`, p.query],
      [`POST /mcp tools/call run_query${label}`, p.mcp],
    ]),
  );
  for (const run of runs.values()) await run(); // warm-up: JIT, pools
  const results = new Map<string, Measured[]>([...runs.keys()].map((k) => [k, []]));
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? [...runs] : [...runs].reverse();
    for (const [name, run] of order) results.get(name)!.push(await run());
  }
  const of = (name: string, pick: (m: Measured) => number) => median(results.get(name)!.map(pick));
  console.log(`machine: ${machine()}; autocannon ${CONNECTIONS} connections, ${ROUNDS} alternating rounds of ${DURATION} s (medians), pool of ${POOL_SIZE}`);
  console.log("| request | req/s | p50 ms | p99 ms | server CPU per request, µs | CPU vs its /query |");
  console.log("|---|---:|---:|---:|---:|---:|");
  for (const [label] of pulses) {
    const baseCpu = of(`POST /query (connection_id)${label}`, (m) => m.cpuUs);
    for (const name of [`POST /query (connection_id)${label}`, `POST /mcp tools/call run_query${label}`]) {
      const cpu = of(name, (m) => m.cpuUs);
      console.log(`| ${name} | ${of(name, (m) => m.rps).toFixed(0)} | ${of(name, (m) => m.p50)} | ${of(name, (m) => m.p99)} | ${cpu.toFixed(0)} | ${(cpu / baseCpu).toFixed(2)}x |`);
    }
  }
  console.log(`tools/list: ${list.tools.length} tools, ${tokens} o200k tokens (JSON of the tools array); Google's MCP Toolbox PostgreSQL tools: ~${TOOLBOX_POSTGRES_TOKENS} (${(TOOLBOX_POSTGRES_TOKENS / tokens).toFixed(0)}x)`);
} finally {
  for (const server of servers) await server.stop();
  for (const db of metaDbs) await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
  await admin.end();
  await chinook.drop();
}
