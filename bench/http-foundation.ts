// Throughput and latency of login and GET /databases against a real server on this machine,
// on embedded defaults (PGlite + in-process sessions) and on PostgreSQL + Redis.
// Run: npm run build && npx tsx bench/http-foundation.ts

import autocannon from "autocannon";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import path from "node:path";
import { randomBytes } from "node:crypto";
import pg from "pg";

import { machine, startServer, tempDir, type ServerProcess } from "./lib.js";

const DURATION = Number(process.env.DURATION ?? 10);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 10);
const CHINOOK = new URL("../../shared/data/chinook/Chinook_Sqlite.sqlite", import.meta.url);

async function fixture(server: ServerProcess) {
  const email = `bench-${randomBytes(4).toString("hex")}@example.com`;
  const password = "bench password";
  await fetch(`${server.url}/users/`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: "Bench", email, password }) });
  const login = await fetch(`${server.url}/login`, { method: "POST", body: new URLSearchParams({ username: email, password }) });
  const { access_token: token } = (await login.json()) as { access_token: string };
  for (let i = 0; i < 3; i++) {
    const res = await fetch(`${server.url}/databases/add_db_connection`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ db_type: "sqlite", database_name: "chinook.sqlite", name: `Chinook ${i}` }),
    });
    if (res.status !== 201) throw new Error(`fixture: ${res.status} ${await res.text()}`);
  }
  return { email, password, token };
}

async function load(name: string, opts: autocannon.Options) {
  const result = await autocannon({ duration: DURATION, connections: CONNECTIONS, ...opts });
  const errors = result.non2xx + result.errors + result.timeouts;
  return `| ${name} | ${result.requests.average.toFixed(0)} | ${result.latency.p50} | ${result.latency.p99} | ${errors} |`;
}

async function run(label: string, env: Record<string, string>, sqliteRoot: string) {
  mkdirSync(sqliteRoot, { recursive: true });
  copyFileSync(CHINOOK, path.join(sqliteRoot, "chinook.sqlite"));
  const server = await startServer({
    ...env,
    SQLITE_ROOT: sqliteRoot,
    LOGIN_MAX_ATTEMPTS_PER_CLIENT: "100000",
    LOGIN_MAX_ATTEMPTS_PER_ACCOUNT: "10000",
  });
  try {
    const { email, password, token } = await fixture(server);
    const rows = [
      await load(`${label}: POST /login (bcrypt cost 10)`, {
        url: `${server.url}/login`,
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ username: email, password }).toString(),
      }),
      await load(`${label}: GET /databases (3 rows)`, { url: `${server.url}/databases`, headers: { authorization: `Bearer ${token}` } }),
      await load(`${label}: GET /health`, { url: `${server.url}/health` }),
    ];
    return rows;
  } finally {
    await server.stop();
  }
}

const dataDir = tempDir("pulse-bench-http-");
const metaDb = `pulse_bench_meta_${randomBytes(4).toString("hex")}`;
const admin = new pg.Client({ host: "127.0.0.1", user: "postgres", database: "test" });
await admin.connect();
await admin.query(`CREATE DATABASE ${metaDb}`);
try {
  const rows = [
    ...(await run("embedded", { DATA_DIR: dataDir }, path.join(dataDir, "sqlite"))),
    ...(await run(
      "PostgreSQL + Redis",
      {
        DATA_DIR: path.join(dataDir, "prod"),
        NODE_ENV: "production",
        DATABASE_URL: `postgresql://postgres@127.0.0.1:5432/${metaDb}`,
        REDIS_URL: "redis://127.0.0.1:6379/15",
        JWT_SECRET: randomBytes(32).toString("hex"),
        SECRETS_KEY: randomBytes(32).toString("hex"),
      },
      path.join(dataDir, "prod-sqlite"),
    )),
  ];
  console.log(`machine: ${machine()}; autocannon ${CONNECTIONS} connections x ${DURATION} s each, from the same machine`);
  console.log("| endpoint | req/s | p50 ms | p99 ms | errors |");
  console.log("|---|---:|---:|---:|---:|");
  for (const row of rows) console.log(row);
} finally {
  await admin.query(`DROP DATABASE IF EXISTS ${metaDb} WITH (FORCE)`);
  await admin.end();
  rmSync(dataDir, { recursive: true, force: true });
}
