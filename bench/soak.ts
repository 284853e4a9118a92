// Soak under faults: a real Pulse process (metadata on PostgreSQL, sessions on a private Redis)
// serves mixed load for SOAK_MINUTES (direct queries on all three dialects, /ask against the fake
// model, monitoring every second) while a fault is injected every FAULT_EVERY_MS: connections
// killed, network cuts, Redis restarts, the metadata store's sessions terminated, oversized and
// runaway statements. Reports what was served, the error mix, /health latency, RSS over time,
// process restarts (must be 0) and the shutdown time.
//
//   npm run bench:soak                       (10 minutes)
//   SOAK_MINUTES=1 npm run bench:soak        (a quick look)
//   SOAK_NODE_OPTIONS=--max-old-space-size=192 npm run bench:soak   (RSS growth: lazy GC or a leak?)

import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import path from "node:path";

import { CHINOOK_SQLITE } from "../tests/support/schema-fixtures.js";
import { loadChinookMaria, loadChinookPostgres } from "../tests/support/chinook.js";
import { startFakeOpenAI, type ChatRequest, type FakeReply } from "../tests/support/fake-openai.js";
import { startPrivateRedis } from "../tests/support/private-redis.js";
import { startPulse, type RunningPulse } from "../tests/support/pulse-process.js";
import { createPgDatabase, MARIADB, mariaAdmin, PG, pgAdmin } from "../tests/support/services.js";
import { startTcpRelay } from "../tests/support/tcp-relay.js";
import { machine, median, percentile, rssMb, tempDir } from "./lib.js";

const MINUTES = Number(process.env.SOAK_MINUTES ?? 10);
const CONCURRENCY = Number(process.env.SOAK_CONCURRENCY ?? 6);
const FAULT_EVERY_MS = Number(process.env.FAULT_EVERY_MS ?? 4_000);
const WARM_UP_MS = Math.min(120_000, (MINUTES * 60_000) / 5);

// ---------------------------------------------------------------- the world around Pulse

/** The fake model asks for one query, then answers with what it got back. */
function modelStep(request: ChatRequest): FakeReply {
  if (request.messages.at(-1)?.role === "tool") return { content: "There are that many tracks." };
  return { toolCalls: [{ name: "run_query", args: { sql: "SELECT count(*) AS n FROM track" } }] };
}

// ---------------------------------------------------------------- measurements

const statuses = new Map<string, number>();
const count = (key: string) => statuses.set(key, (statuses.get(key) ?? 0) + 1);
const healthMs: number[] = [];
let healthFailures = 0;
const rss: { minute: number; mb: number }[] = [];
const faults = new Map<string, number>();
let restarts = 0;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const dataDir = tempDir("pulse-soak-");
  const sqliteRoot = path.join(dataDir, "sqlite");
  mkdirSync(sqliteRoot);
  copyFileSync(CHINOOK_SQLITE, path.join(sqliteRoot, "chinook.sqlite"));
  const [meta, chinookPg, chinookMaria, redis] = await Promise.all([
    createPgDatabase("pulse_soak_meta"),
    loadChinookPostgres(),
    loadChinookMaria(),
    startPrivateRedis(),
  ]);
  const pgRelay = await startTcpRelay({ host: PG.host, port: PG.port });
  const mariaRelay = await startTcpRelay({ host: MARIADB.host, port: MARIADB.port });
  const model = await startFakeOpenAI(Array.from({ length: 1_000_000 }, () => modelStep));

  // Replaced if the process ever exits on its own (counted as a restart).
  let pulse: RunningPulse | undefined;
  const live = () => pulse!;
  let stopping = false;
  try {
    const env = {
      DATA_DIR: dataDir,
      SQLITE_ROOT: sqliteRoot,
      DATABASE_URL: meta.url,
      REDIS_URL: redis.url,
      JWT_SECRET: "soak-secret-for-tokens-".repeat(2),
      SECRETS_KEY: "0123456789abcdef".repeat(4),
      OPENAI_BASE_URL: model.baseUrl,
      OPENAI_API_KEY: "sk-soak",
      NODE_ENV: "production",
      // The soak's databases are on this machine, which production refuses by default.
      TARGET_ALLOW_NETWORKS: "127.0.0.0/8",
      LOG_LEVEL: "warn",
      BCRYPT_ROUNDS: "4",
      MONITOR_MIN_INTERVAL_SECONDS: "1",
      MONITOR_TICK_MS: "500",
      MONITOR_SCHEDULER: "on",
      CONNECTION_QUERIES_PER_MINUTE: "100000",
      USER_QUERIES_PER_MINUTE: "100000",
      ASK_PER_MINUTE: "100000",
      ASK_TOKENS_PER_HOUR: "1000000000000",
      // e.g. SOAK_NODE_OPTIONS=--max-old-space-size=192: a leak then ends the process (a restart).
      ...(process.env.SOAK_NODE_OPTIONS ? { NODE_OPTIONS: process.env.SOAK_NODE_OPTIONS } : {}),
    };
    pulse = await startPulse(env);
    const watch = (p: RunningPulse) =>
      void p.exited.then(async ({ code, signal }) => {
        if (stopping) return;
        restarts++;
        console.error(`pulse exited (code ${code}, signal ${signal}); restarting. Last output:\n${p.stderr().slice(-4000)}`);
        pulse = await startPulse(env);
        watch(pulse);
      });
    watch(pulse);

    // A user, three connections (the servers' through relays the soak can cut), monitoring.
    const email = `soak-${Date.now()}@example.com`;
    const password = "correct horse battery";
    const registered = await live().call("POST", "/users/", { json: { name: "Soak", email, password } });
    const userId = ((await registered.json()) as { id: number }).id;
    let token = "";
    let session = "";
    const ids = { pg: 0, maria: 0, sqlite: 0 };
    let relogin: Promise<void> | null = null;
    const login = () =>
      (relogin ??= (async () => {
        for (;;) {
          const res = await live().call("POST", "/login", { json: { username: email, password } }).catch(() => null);
          if (res?.status === 200) {
            token = ((await res.json()) as { access_token: string }).access_token;
            const connect = await live().call("POST", `/databases/connect_db/${ids.pg || 1}`, { token }).catch(() => null);
            if (connect?.status === 200) session = ((await connect.json()) as { session_id: string }).session_id;
            if (!ids.pg || session) return;
          }
          await sleep(500);
        }
      })().finally(() => (relogin = null)));
    await login();
    const add = async (json: Record<string, unknown>) => {
      const res = await live().call("POST", "/databases/add_db_connection", { token, json });
      if (res.status !== 201) throw new Error(`adding ${String(json.name)} failed: ${res.status} ${await res.text()}`);
      return ((await res.json()) as { db_connection: { id: number } }).db_connection.id;
    };
    ids.pg = await add({ name: "pg", db_type: "postgresql", host: "127.0.0.1", port: pgRelay.port, database_name: chinookPg.name, username: PG.user, db_password: "unused" });
    ids.maria = await add({ name: "maria", db_type: "mysql", host: "127.0.0.1", port: mariaRelay.port, database_name: chinookMaria.name, username: MARIADB.user, db_password: "" });
    ids.sqlite = await add({ name: "sqlite", db_type: "sqlite", database_name: "chinook.sqlite" });
    await login();
    const monitored = [
      { connection_id: ids.pg, table: "invoice", checks: [{ kind: "volume" }, { kind: "freshness", column: "invoice_date" }, { kind: "null_rate", column: "billing_state" }, { kind: "schema_drift" }] },
      { connection_id: ids.maria, table: "Invoice", checks: [{ kind: "volume" }, { kind: "freshness", column: "InvoiceDate" }, { kind: "schema_drift" }] },
      { connection_id: ids.sqlite, table: "Invoice", checks: [{ kind: "volume" }, { kind: "custom_sql", name: "negative_totals", sql: "SELECT count(*) FROM Invoice WHERE Total < 0", max: 0 }] },
    ];
    for (const body of monitored) {
      const res = await live().call("POST", "/api/tables", { token, json: { ...body, interval_seconds: 1 } });
      if (res.status !== 201) throw new Error(`monitoring failed: ${res.status} ${await res.text()}`);
    }

    // ------------------------------------------------------------ load
    const query = (id: number, sql: string, extra: Record<string, unknown> = {}) =>
      live().call("POST", `/databases/${id}/query`, { token, json: { sql, ...extra } });
    const operations: [string, () => Promise<Response>][] = [
      ["query pg", () => query(ids.pg, "SELECT name FROM artist ORDER BY artist_id LIMIT 20")],
      ["query mysql", () => query(ids.maria, "SELECT Name FROM Artist ORDER BY ArtistId LIMIT 20")],
      ["query sqlite", () => query(ids.sqlite, "SELECT Name FROM Artist ORDER BY ArtistId LIMIT 20")],
      ["ask", () => live().call("POST", "/ask", { token, json: { question: "How many tracks are there?", session_id: session, user_id: userId } })],
    ];
    const startedAt = Date.now();
    const endsAt = startedAt + MINUTES * 60_000;
    const record = async (kind: string, request: () => Promise<Response>) => {
      try {
        const res = await request();
        await res.arrayBuffer();
        count(`${kind} ${res.status}`);
        // A Redis restart loses sessions: log in again (401) or reconnect the session (409).
      if (res.status === 401 || (kind === "ask" && res.status === 409)) await login();
      } catch {
        count(`${kind} no answer`);
      }
    };
    const workers = Array.from({ length: CONCURRENCY }, async (_, w) => {
      for (let i = w; Date.now() < endsAt; i++) {
        const [kind, request] = operations[i % operations.length]!;
        await record(kind, request);
      }
    });
    const health = (async () => {
      while (Date.now() < endsAt) {
        const t0 = performance.now();
        const res = await fetch(`${live().base}/health`).catch(() => null);
        healthMs.push(performance.now() - t0);
        if (res?.status !== 200) healthFailures++;
        await res?.arrayBuffer();
        await sleep(200);
      }
    })();
    const memory = (async () => {
      while (Date.now() < endsAt) {
        // Between an unexpected exit and its restart there is no process to read.
        try {
          rss.push({ minute: (Date.now() - startedAt) / 60_000, mb: rssMb(live().child.pid) });
        } catch {
          // no process right now
        }
        await sleep(10_000);
      }
    })();

    // ------------------------------------------------------------ faults
    const injections: [string, () => Promise<unknown>][] = [
      ["PostgreSQL backends terminated", () => pgAdmin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", "postgres", [chinookPg.name])],
      ["MariaDB connections killed", async () => {
        const rows = await mariaAdmin<{ ID: number }>(`SELECT ID FROM information_schema.PROCESSLIST WHERE DB = '${chinookMaria.name}' AND ID <> CONNECTION_ID()`);
        for (const row of rows) await mariaAdmin(`KILL ${row.ID}`).catch(() => {});
      }],
      ["PostgreSQL network cut", async () => pgRelay.cut()],
      ["MariaDB network cut", async () => mariaRelay.cut()],
      ["Redis restarted", async () => {
        await redis.stop();
        await sleep(1_000);
        await redis.start();
      }],
      ["metadata store sessions terminated", () => pgAdmin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", "postgres", [meta.name])],
      ["oversized value, PostgreSQL", () => record("fault: oversized pg", () => query(ids.pg, "SELECT repeat('x', 540000000)"))],
      ["oversized value, MariaDB", () => record("fault: oversized mysql", () => query(ids.maria, `SELECT ${Array.from({ length: 8 }, (_, i) => `RPAD(x'', 15000000, x'78') AS c${i}`).join(", ")}`))],
      ["oversized value, SQLite", () => record("fault: oversized sqlite", () => query(ids.sqlite, "SELECT zeroblob(1000000000)"))],
      ["runaway SQLite statement", () => record("fault: runaway sqlite", () => query(ids.sqlite, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c", { timeout_ms: 1000 }))],
      ["PostgreSQL network frozen", async () => {
        pgRelay.freeze();
        await sleep(3_000);
        pgRelay.cut();
      }],
    ];
    const injector = (async () => {
      for (let i = 0; Date.now() < endsAt - FAULT_EVERY_MS; i++) {
        await sleep(FAULT_EVERY_MS);
        const [name, inject] = injections[i % injections.length]!;
        faults.set(name, (faults.get(name) ?? 0) + 1);
        void inject().catch((err: unknown) => console.error(`injecting "${name}" failed: ${String(err)}`));
      }
    })();
    await Promise.all([...workers, health, memory, injector]);

    // ------------------------------------------------------------ shutdown
    stopping = true;
    const signalledAt = performance.now();
    live().child.kill("SIGTERM");
    const exit = await Promise.race([live().exited, sleep(60_000).then(() => ({ code: null, signal: "still running after 60 s" }))]);
    const shutdownMs = performance.now() - signalledAt;

    report({ shutdownMs, exit, processOutput: live().stdout() + live().stderr() });
  } finally {
    stopping = true;
    pulse?.child.kill("SIGKILL");
    await model.close();
    await Promise.all([pgRelay.close(), mariaRelay.close()]);
    await redis.stop();
    await Promise.all([meta.drop(), chinookPg.drop(), chinookMaria.drop()]);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

function report(end: { shutdownMs: number; exit: { code: number | null; signal: string | null }; processOutput: string }) {
  const served = [...statuses.values()].reduce((a, b) => a + b, 0);
  const afterWarmUp = rss.filter((s) => s.minute * 60_000 >= WARM_UP_MS);
  const lines = [
    `Soak: ${MINUTES} min, ${CONCURRENCY} clients, a fault every ${FAULT_EVERY_MS / 1000} s; ${machine()}`,
    "",
    `- requests answered or failed: ${served} (${(served / (MINUTES * 60)).toFixed(0)}/s)`,
    `- process restarts: ${restarts}`,
    `- /health: ${healthMs.length} probes, p50 ${median(healthMs).toFixed(1)} ms, p99 ${percentile(healthMs, 99).toFixed(1)} ms, max ${Math.max(...healthMs).toFixed(0)} ms, not 200: ${healthFailures}`,
    `- RSS (MB) by minute: ${rss.map((s) => `${s.minute.toFixed(1)}: ${s.mb.toFixed(0)}`).join(", ")}`,
    `- RSS after warm-up (${(WARM_UP_MS / 60_000).toFixed(0)} min): first ${afterWarmUp[0]?.mb.toFixed(0)} MB, last ${afterWarmUp.at(-1)?.mb.toFixed(0)} MB, max ${Math.max(...afterWarmUp.map((s) => s.mb)).toFixed(0)} MB`,
    `- shutdown after SIGTERM: ${end.shutdownMs.toFixed(0)} ms (exit code ${end.exit.code}, signal ${end.exit.signal})`,
    "",
    "| faults injected | times |",
    "|---|---|",
    ...[...faults].map(([name, n]) => `| ${name} | ${n} |`),
    "",
    "| request and status | count |",
    "|---|---|",
    ...[...statuses].sort(([a], [b]) => a.localeCompare(b)).map(([key, n]) => `| ${key} | ${n} |`),
  ];
  console.log(lines.join("\n"));
  const errors = end.processOutput.split("\n").filter((line) => /"level":(50|60)/.test(line));
  if (errors.length > 0) console.log(`\n${errors.length} error lines in the server log; the last:\n${errors.slice(-5).join("\n")}`);
}

await main();
