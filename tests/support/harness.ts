// Builds a real Pulse app for a test: its own metadata store (PGlite in memory or a fresh
// PostgreSQL database), its own session store (in-process or Redis under a unique prefix),
// its own data directory, and a log capture so tests can search what was logged.

import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { Writable } from "node:stream";

import type { ServerType } from "@hono/node-server";

import { createApp, JSON_RPC_PATHS } from "../../src/app.js";
import { createAuditTrail } from "../../src/audit/trail.js";
import { createPasswordHasher } from "../../src/auth/passwords.js";
import { loadConfig, type Config } from "../../src/config.js";
import type { Deps } from "../../src/deps.js";
import { loadGuard } from "../../src/connectors/guard/index.js";
import { createTargetGate } from "../../src/connectors/target-gate.js";
import { createLogger } from "../../src/logger.js";
import { shutdownController } from "../../src/http/standing.js";
import { serveApp, serveLimits } from "../../src/http/unread-responses.js";
import { createMetrics } from "../../src/metrics.js";
import { createConnectorCache, createCredentialChecks, modelFor, openSessionStore, watchGauges } from "../../src/lifecycle.js";
import { loadPrompts } from "../../agents/prompts.js";
import { deliveriesSettled } from "../../src/monitoring/notifiers.js";
import { createMonitoring } from "../../src/monitoring/runtime.js";
import { createScheduler } from "../../src/monitoring/scheduler.js";
import { AskTurns } from "../../src/ask-turns.js";
import { openStore, type Store } from "../../src/store/client.js";
import { createPgDatabase, PG, REDIS_URL, redisWithPrefix, uniqueName, untilPulseDisconnected } from "./services.js";
import { STORE_TEMPLATE } from "./store-template.js";
import { sqliteTarget } from "./targets.js";

export interface HarnessOptions {
  /** Default PostgreSQL (a fresh database); PGlite takes seconds to start, so suites ask for it. */
  store?: "pglite" | "postgresql";
  sessions?: "memory" | "redis";
  env?: Record<string, string>;
  /** Share another harness's metadata store, secrets and Redis prefix: a second instance. */
  shareWith?: SharedInstance;
  /** Monitoring's clock (epoch ms); tests that drive the scheduler move it by hand. */
  now?: () => number;
  /** Monitoring's jitter source, in [0, 1). */
  random?: () => number;
  /** The scheduler's instance id (default: unique per harness). */
  instanceId?: string;
  /** Reach the metadata PostgreSQL through this port of 127.0.0.1 (a tcp-relay in front of it). */
  storePort?: number;
  /** How often a Redis session store renews this instance's presence (default 5 s). */
  heartbeatMs?: number;
  /** The metadata store: this PostgreSQL database as it is, migrated as every start migrates
   * it, and dropped with the harness (default: a fresh one). For a store an earlier Pulse left. */
  database?: Awaited<ReturnType<typeof createPgDatabase>>;
  /** How often the audit trail writes what waits without being asked (default 200 ms): long,
   * for a test that needs records to wait until it flushes them itself. */
  auditFlushEveryMs?: number;
}

interface SharedInstance {
  config: Config;
  deps: Deps;
  redis: ReturnType<typeof redisWithPrefix> | undefined;
  sessionsKind: "memory" | "redis";
}

export type Harness = Awaited<ReturnType<typeof createHarness>>;

export interface ApiResponse<T = any> {
  status: number;
  body: T;
  headers: Headers;
  text: string;
}

export async function createHarness(options: HarnessOptions = {}) {
  const dataDir = mkdtempSync(path.join(tmpdir(), "pulse-test-"));
  const shared = options.shareWith;
  // Instances of one deployment share SQLITE_ROOT, like they share the stores.
  const sqliteRoot = shared?.config.sqliteRoot ?? path.join(dataDir, "sqlite");
  mkdirSync(sqliteRoot, { recursive: true });
  // A copy of the run's migrated store (store-template.ts), when vitest made one.
  const pgDatabase =
    options.database ?? (!shared && (options.store ?? "postgresql") === "postgresql" ? await createPgDatabase("pulse_meta", process.env[STORE_TEMPLATE]) : undefined);
  const databaseUrl = shared ? shared.config.databaseUrl : pgDatabase?.url;
  const sessionsKind = options.sessions ?? shared?.sessionsKind ?? "memory";
  // Each deployment (a harness and those sharing it) has its own Redis prefix.
  const redis = sessionsKind === "redis" ? (shared?.redis ?? redisWithPrefix()) : undefined;
  const config = loadConfig({
    NODE_ENV: "test",
    DATA_DIR: dataDir,
    SQLITE_ROOT: sqliteRoot,
    JWT_SECRET: shared ? new TextDecoder().decode(shared.config.jwtSecret) : randomBytes(32).toString("hex"),
    SECRETS_KEY: shared ? shared.config.secretsKey.toString("hex") : randomBytes(32).toString("hex"),
    BCRYPT_ROUNDS: "4",
    CONNECT_TIMEOUT_MS: "3000",
    LOG_LEVEL: "debug",
    // Other suites must not see checks running behind their backs: tests tick by hand.
    MONITOR_SCHEDULER: "off",
    // Every test registers its own users, all from one address (app.request has no socket).
    REGISTER_MAX_PER_CLIENT: "1000000",
    REGISTER_MAX_TOTAL: "10000000",
    CONNECTION_TESTS_PER_MINUTE: "1000000",
    // Pulse's own servers, which no connection may reach (tests/security/metadata-store-aliases.test.ts).
    ...(databaseUrl && { DATABASE_URL: databaseUrl }),
    ...(redis && { REDIS_URL, REDIS_PREFIX: redis.prefix }),
    ...options.env,
  });

  const logs: string[] = [];
  const logger = createLogger(
    config.logLevel,
    new Writable({
      write(chunk, _enc, done) {
        logs.push(String(chunk));
        done();
      },
    }),
  );

  const cleanups: (() => Promise<void>)[] = [];
  let store: Store;
  if (shared) {
    store = shared.deps.store;
  } else if (pgDatabase) {
    const storeUrl = options.storePort ? `postgresql://${PG.user}@127.0.0.1:${options.storePort}/${pgDatabase.name}` : pgDatabase.url;
    store = await openStore({ databaseUrl: storeUrl, queryTimeoutMs: config.storeQueryTimeoutMs });
    await store.migrate();
    cleanups.push(async () => {
      await store.close();
      // Dropping the database WITH (FORCE) under sessions still ending would surface as an
      // uncaught 57P01 on a pool without an 'error' listener. The monitoring suites keep many
      // clients busy: wait.
      await untilPulseDisconnected(pgDatabase.name);
      await pgDatabase.drop();
    });
  } else {
    store = await openStore({ pgliteDir: null });
    await store.migrate();
    cleanups.push(() => store.close());
  }

  // Opened as in production, from REDIS_URL and REDIS_PREFIX.
  const sessions = await openSessionStore(config, logger, { heartbeatMs: options.heartbeatMs });
  cleanups.push(() => sessions.close());
  if (redis && !shared) cleanups.push(() => redis.cleanup());

  await loadGuard();
  const audit = config.audit.enabled ? createAuditTrail(store, config.audit, logger, { flushEveryMs: options.auditFlushEveryMs }) : null;
  // Runs after the connectors close (cleanups run in reverse): their last records are written.
  if (audit) cleanups.push(() => audit.close());
  const metrics = createMetrics();
  const connectors = await createConnectorCache(config, logger, sessions, { audit, metrics });
  watchGauges(metrics, connectors, store);
  cleanups.push(() => connectors.close());
  const passwords = createPasswordHasher({ threads: config.passwordHashThreads, rounds: config.bcryptRounds, logger });
  cleanups.push(() => passwords.close());
  const monitoring = createMonitoring(config.monitor, { now: options.now, random: options.random });
  const credentials = await createCredentialChecks(config, logger, store, sessions);
  const targetGate = await createTargetGate(config, store);
  const deps: Deps = { config, store, sessions, logger, passwords, connectors, ...credentials, targetGate, model: await modelFor(config, logger), prompts: loadPrompts(), monitoring, audit, metrics, askTurns: new AskTurns(config.ask.maxConcurrent), shuttingDown: shutdownController() };
  const app = createApp(deps);
  // Not started: tests call scheduler.tick() (or start()) themselves.
  const scheduler = createScheduler(deps, { instanceId: options.instanceId ?? uniqueName("instance") });
  // A tick resolves once its runs' notifications are sent too, as a call does (see call()).
  const tick = scheduler.tick.bind(scheduler);
  scheduler.tick = () => tick().then(async (report) => (await deliveriesSettled(deps), report));
  cleanups.push(() => scheduler.stop());

  async function call<T = any>(
    method: string,
    url: string,
    init: { token?: string; json?: unknown; form?: Record<string, string>; body?: string; headers?: Record<string, string> } = {},
  ): Promise<ApiResponse<T>> {
    const headers: Record<string, string> = { ...init.headers };
    if (init.token) headers.authorization = `Bearer ${init.token}`;
    let body: string | undefined = init.body;
    if (init.json !== undefined) {
      headers["content-type"] ??= "application/json";
      body = JSON.stringify(init.json);
    } else if (init.form) {
      headers["content-type"] ??= "application/x-www-form-urlencoded";
      body = new URLSearchParams(init.form).toString();
    }
    const res = await app.request(url, { method, headers, body });
    const text = await res.text();
    // A run or an alert action answers before its notifications are sent (deliverSoon): a test
    // reads what the receiver got once they have been.
    await deliveriesSettled(deps);
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      // not JSON (e.g. the docs page); tests read `text`
    }
    return { status: res.status, body: parsed as T, headers: res.headers, text };
  }

  /** The app served as the service serves it (serveApp, src/serve.ts) on a free port of
   * 127.0.0.1, for tests that need real sockets; closed first when the harness closes. */
  async function serve(): Promise<{ url: string; port: number }> {
    const server = await new Promise<ServerType>((resolve) => {
      const s = serveApp(app.fetch, { port: 0, hostname: "127.0.0.1", ...serveLimits(deps, JSON_RPC_PATHS) }, () => resolve(s));
    });
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const { port } = server.address() as AddressInfo;
    return { url: `http://127.0.0.1:${port}`, port };
  }

  /** Registers a unique user and logs in; returns the token and the user. */
  async function newUser(password = "correct horse battery") {
    const email = `${uniqueName("user")}@example.com`;
    const reg = await call("POST", "/users/", { json: { name: "Test User", email, password } });
    if (reg.status !== 201) throw new Error(`register failed: ${reg.status} ${reg.text}`);
    const login = await call("POST", "/login", { form: { username: email, password } });
    if (login.status !== 200) throw new Error(`login failed: ${login.status} ${login.text}`);
    return {
      id: reg.body.id as number,
      email,
      password,
      token: login.body.access_token as string,
      sessionId: login.body.session_id as string,
    };
  }

  /** A new user whose session is connected to a fresh copy of Chinook on SQLite. */
  async function newConnectedUser() {
    const user = await newUser();
    const target = await sqliteTarget(sqliteRoot);
    const id = (await call("POST", "/databases/add_db_connection", { token: user.token, json: target.body })).body.db_connection.id as number;
    const connect = await call("POST", `/databases/connect_db/${id}`, { token: user.token });
    if (connect.status !== 200) throw new Error(`connect failed: ${connect.status} ${connect.text}`);
    return user;
  }

  return {
    app,
    deps,
    config,
    scheduler,
    logs,
    redis,
    sessionsKind,
    pgDatabase,
    sqliteRoot,
    call,
    serve,
    newUser,
    newConnectedUser,
    async close() {
      for (const cleanup of cleanups.reverse()) await cleanup();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
