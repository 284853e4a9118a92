// The audit trail's cost in Pulse's own process: CPU per POST /query with AUDIT_TRAIL=on
// against off, both apps in this one process (app.request(), no sockets), blocks of requests
// alternating between them, CPU from process.cpuUsage() (this process only: the metadata
// store's and Chinook's PostgreSQL backends are not counted). It separates what recording costs
// Pulse from what the store's writes cost the machine, which bench/audit.ts measures together.
// Run: npx tsx bench/audit-cpu.ts (ROUNDS, default 9, of BLOCK requests, default 3000).

import { loadChinookPostgres } from "../tests/support/chinook.js";
import { createHarness, type Harness } from "../tests/support/harness.js";
import { PG } from "../tests/support/services.js";
import { machine, median } from "./lib.js";

const ROUNDS = Number(process.env.ROUNDS ?? 9);
const BLOCK = Number(process.env.BLOCK ?? 3000);
const CONCURRENCY = 10;
const SQL = "SELECT track_id, name, milliseconds FROM track WHERE track_id = 42";

const chinook = await loadChinookPostgres();

async function pulse(auditTrail: "on" | "off") {
  const h = await createHarness({
    sessions: "redis",
    env: {
      AUDIT_TRAIL: auditTrail,
      // As a server logs in production; the harness keeps its debug lines in memory.
      LOG_LEVEL: "info",
      NODE_ENV: "production",
      TARGET_ALLOW_NETWORKS: "127.0.0.0/8",
      CONNECTION_POOL_SIZE: String(CONCURRENCY),
      CONNECTION_MAX_CONCURRENCY: String(CONCURRENCY),
      USER_MAX_CONCURRENCY: String(CONCURRENCY),
      CONNECTION_QUERIES_PER_MINUTE: "10000000",
      USER_QUERIES_PER_MINUTE: "10000000",
    },
  });
  opened.push(h);
  const user = await h.newUser();
  const added = await h.call("POST", "/databases/add_db_connection", {
    token: user.token,
    json: { db_type: "postgresql", host: PG.host, port: PG.port, database_name: chinook.name, username: PG.user, db_password: "x" },
  });
  if (added.status !== 201) throw new Error(`adding Chinook failed: ${added.status} ${added.text}`);
  const body = JSON.stringify({ sql: SQL, connection_id: added.body.db_connection.id as number });
  const headers = { authorization: `Bearer ${user.token}`, "content-type": "application/json" };
  return { h, send: () => h.app.request("/query", { method: "POST", headers, body }) };
}

/** CPU µs per request of `BLOCK` requests, CONCURRENCY at a time. */
async function block(p: Awaited<ReturnType<typeof pulse>>): Promise<number> {
  let next = 0;
  const started = process.cpuUsage();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next++ < BLOCK) {
        const res = await p.send();
        if (res.status !== 200) throw new Error(`/query answered ${res.status}: ${await res.text()}`);
        await res.arrayBuffer();
      }
    }),
  );
  const used = process.cpuUsage(started);
  return (used.user + used.system) / BLOCK;
}

/** Every app made, closed with Chinook at the end, however the run ends. */
const opened: Harness[] = [];
try {
  const servers = { on: await pulse("on"), off: await pulse("off"), "off (control)": await pulse("off") };
  for (const p of Object.values(servers)) await block(p); // warm-up
  const cpu: Record<string, number[]> = { on: [], off: [], "off (control)": [] };
  for (let round = 0; round < ROUNDS; round++) {
    const names = Object.keys(servers) as (keyof typeof servers)[];
    for (let i = 0; i < names.length; i++) {
      const name = names[(i + round) % names.length]!;
      cpu[name]!.push(await block(servers[name]));
    }
  }
  const off = median(cpu.off!);
  console.log(machine());
  console.log(`| server | Pulse CPU per request, µs (median of ${ROUNDS} blocks of ${BLOCK}) | vs off |`);
  console.log("|---|---:|---:|");
  for (const [name, key] of [["AUDIT_TRAIL=on", "on"], ["AUDIT_TRAIL=off", "off"], ["AUDIT_TRAIL=off (control)", "off (control)"]] as const) {
    const value = median(cpu[key]!);
    console.log(`| ${name} | ${value.toFixed(1)} | ${(value / off).toFixed(3)} |`);
  }
} finally {
  for (const h of opened) await h.close();
  await chinook.drop();
}
