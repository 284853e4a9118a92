// Builds the dependencies from config, serves HTTP, and shuts everything down in order:
// stop accepting, finish in-flight requests, then close what they used.

import type { ServerType } from "@hono/node-server";
import type { IncomingMessage, Server, ServerResponse } from "node:http";

import { createApp, JSON_RPC_PATHS } from "./app.js";
import { shutdownController } from "./http/standing.js";
import { serveApp, serveLimits } from "./http/unread-responses.js";
import { createAuditTrail, type AuditTrail } from "./audit/trail.js";
import { createApiKeyVerifier, type ApiKeyVerifier } from "./auth/api-keys.js";
import { createPasswordHasher } from "./auth/passwords.js";
import { createRevocationWatch, type RevocationWatch } from "./auth/revocation-watch.js";
import { createTokenStanding, type TokenStanding } from "./auth/token-standing.js";

import { createChatModel, isModelConfigured, type ChatModel } from "../agents/model.js";
import { loadPrompts } from "../agents/prompts.js";
import type { Config } from "./config.js";
import { ConnectorCache } from "./connectors/cache.js";
import { counted } from "./counted.js";
import { countConnectionAttempt } from "./connectors/connect-failures.js";
import { loadGuard } from "./connectors/guard/index.js";
import { createTargetGate } from "./connectors/target-gate.js";
import type { Deps } from "./deps.js";
import { DomainError } from "./errors.js";
import { newInstanceId } from "./instance-id.js";
import { createLogger, type Logger } from "./logger.js";
import { createMetrics, type Metrics } from "./metrics.js";
import { createMonitoring } from "./monitoring/runtime.js";
import { deliveriesSettled } from "./monitoring/notifiers.js";
import { CANCEL_GRACE_MS, createScheduler, type Scheduler } from "./monitoring/scheduler.js";
import { createMemorySessionStore } from "./sessions/memory.js";
import { createRedisSessionStore } from "./sessions/redis.js";
import { connectRedis } from "./sessions/redis-client.js";
import type { PresenceOptions } from "./sessions/presence.js";
import type { SessionStore } from "./sessions/types.js";
import { findApiKeyByHash, markApiKeyUsed } from "./store/api-keys.js";
import { AskTurns } from "./ask-turns.js";
import { reasonOf, StartupError } from "./startup-error.js";
import { openStore, storeLocation, type Store } from "./store/client.js";
import { countOpenAlerts } from "./store/monitoring-alerts.js";
import { readStanding } from "./store/revocations.js";
import { settlesWithin } from "./within.js";

/** `presence` tunes the heartbeat of the instance count (tests shorten it). */
export async function openSessionStore(
  config: Pick<Config, "redisUrl" | "redisPrefix">,
  logger: Logger,
  presence?: PresenceOptions,
): Promise<SessionStore> {
  if (!config.redisUrl) return createMemorySessionStore();
  return createRedisSessionStore(await connectRedis(config.redisUrl, config.redisPrefix, logger), presence);
}

/** Where instances tell each other which connectors to evict. */
const EVICTIONS_CHANNEL = "connector-evictions";
/** Where instances tell each other whose catalogs they read anew (connectors' schemaReadAnew);
 * each message names its sender, which keeps the schema it just read. */
const SCHEMA_READS_CHANNEL = "schema-reads";

/** The connector cache, subscribed to the other instances' evictions through `sessions`, with
 * budgets divided among the live instances counted there. A process that serves no queries
 * (`pulse check`) passes `serving: false`: it does not count, so it takes no share. */
export async function createConnectorCache(
  config: Config,
  logger: Logger,
  sessions: SessionStore,
  options: { serving?: boolean; audit?: AuditTrail | null; metrics?: Metrics } = {},
): Promise<ConnectorCache> {
  const presence =
    options.serving === false
      ? { count: 1 }
      : await sessions.instances((err) => {
          logger.warn({ err }, "counting live instances failed; connection budgets keep the last count");
        });
  const self = newInstanceId();
  const cache = new ConnectorCache(
    {
      maxEntries: config.connectors.cacheMax,
      idleMs: config.connectors.idleSeconds * 1000,
      schemaMemory: { maxBytes: config.connectors.schemaMaxBytes, maxTotalBytes: config.connectors.schemaCacheMaxBytes },
      schemaMaxAgeMs: config.connectors.schemaMaxAgeSeconds * 1000,
      // Room for monitoring beside the interactive statements a database's budget lets run
      // (CONNECTION_MAX_CONCURRENCY, at most the pool's size): checks have a budget of their
      // own, and must not wait for a socket behind other users' reads of a shared pool.
      pool: { maxConnections: config.connectors.poolSize + config.monitor.connectionConcurrency, idleTimeoutMs: 60_000, sqliteMemoryMb: config.connectors.sqliteMemoryMb },
      limits: config.query,
      budget: { ...config.connectionBudget, maxWaitMs: config.query.timeoutMs },
      userBudget: { ...config.userBudget, maxWaitMs: config.query.timeoutMs },
      guard: config.sqlGuard,
      instances: () => presence.count,
      recorder: options.audit ?? undefined,
      metrics: options.metrics,
      recheckMs: config.tokenRecheckSeconds * 1000,
      countConnectAttempt: (ownerId) => countConnectionAttempt({ config, sessions }, ownerId),
    },
    logger,
    (connectionId) => sessions.publish(EVICTIONS_CHANNEL, String(connectionId)),
    (connectionId) => sessions.publish(SCHEMA_READS_CHANNEL, `${self} ${connectionId}`),
  );
  await sessions.subscribe(EVICTIONS_CHANNEL, (message) => cache.evictHere(Number(message)));
  await sessions.subscribe(SCHEMA_READS_CHANNEL, (message) => {
    const [from, connectionId] = message.split(" ");
    if (from !== self) cache.discardSchemaHere(Number(connectionId));
  });
  // Evictions may have been missed (a connection deleted, or moved to another server, on another
  // instance): each connector opened before is checked against its connection on its next use.
  // So may schema reads anew: each schema kept is read again on its next use.
  sessions.onSubscriptionGap(() => cache.suspectAll());
  return cache;
}

/** Token and API key revocations, read from `store` and told to the other instances through
 * `sessions`; an API key is trusted as long as a token's standing is. Work under way for a
 * credential hears of its revocation too. */
export async function createCredentialChecks(
  config: Config,
  logger: Logger,
  store: Store,
  sessions: SessionStore,
): Promise<{ tokens: TokenStanding; apiKeys: ApiKeyVerifier; revocations: RevocationWatch }> {
  const maxAgeMs = config.tokenRecheckSeconds * 1000;
  const apiKeys = createApiKeyVerifier({
    maxAgeMs,
    read: (secretHash) => findApiKeyByHash(store.db, secretHash),
    markUsed: (keyId) => markApiKeyUsed(store.db, keyId),
    onMarkError: (err) => logger.warn({ err }, "recording an API key's last use failed"),
    listening: () => sessions.listening(),
  });
  const revocations = createRevocationWatch((err) => logger.warn({ err }, "checking whether a credential still stands failed; its work goes on"));
  const tokens = await createTokenStanding({
    maxAgeMs,
    read: (userId, sessionId) => readStanding(store.db, userId, sessionId),
    sessions,
    onAnnounceError: (err) => logger.error({ err }, "telling other instances of a revoked token failed"),
    alsoForget: (revocation) => {
      apiKeys.forget(revocation);
      revocations.revoked(revocation);
    },
  });
  return { tokens, apiKeys, revocations };
}

export function modelFor(config: Config, logger: Logger): ChatModel | null {
  if (!isModelConfigured(config.openai)) return null;
  return createChatModel(config.openai, (change, refusal) => logger.warn({ model_server: config.openai.server ?? "auto", refusal: refusal.slice(0, 300) }, change));
}

/** The gauges read when /metrics is scraped. */
export function watchGauges(metrics: Metrics, connectors: ConnectorCache, store: Store): void {
  metrics.readAtScrape({ openConnectors: () => connectors.size, openAlerts: () => countOpenAlerts(store.db) });
}

export async function buildDeps(
  config: Config,
  logger: Logger = createLogger(config.logLevel, undefined, config.logFormat),
  options: { serving?: boolean } = {},
): Promise<Deps> {
  await loadGuard();
  const prompts = loadPrompts();
  // Redis first: it answers in milliseconds, so a wrong REDIS_URL does not wait for PGlite.
  const sessions = await openSessionStore(config, logger);
  let store: Store | undefined;
  try {
    store = await openStore(storeLocation(config));
    // Only a server migrates: a command run beside the servers (`pulse check`) would otherwise
    // make an empty database a store, or move the servers' store to a schema they do not know.
    if (options.serving === false) await store.refuseNotCurrent();
    // A migration may take long (README, Upgrading): the log says why start-up waits.
    else await store.migrate((pending) => logger.info({ pending }, `applying ${counted(pending, "migration")}`));
    const audit = config.audit.enabled ? createAuditTrail(store, config.audit, logger) : null;
    const metrics = createMetrics({ processMetrics: true });
    const connectors = await createConnectorCache(config, logger, sessions, { ...options, audit, metrics });
    watchGauges(metrics, connectors, store);
    return {
      config,
      store,
      sessions,
      logger,
      passwords: createPasswordHasher({ threads: config.passwordHashThreads, rounds: config.bcryptRounds, logger }),
      targetGate: await createTargetGate(config, store),
      connectors,
      ...(await createCredentialChecks(config, logger, store, sessions)),
      model: modelFor(config, logger),
      prompts,
      monitoring: createMonitoring(config.monitor),
      audit,
      metrics,
      askTurns: new AskTurns(config.ask.maxConcurrent),
      shuttingDown: shutdownController(),
    };
  } catch (err) {
    await sessions.close();
    await store?.close();
    throw err;
  }
}

/** Closes what buildDeps opened, in reverse order; the audit trail writes its last records
 * once no connector can add more, before the store closes. */
export async function closeDeps(deps: Deps): Promise<void> {
  await deps.connectors.close();
  await deps.audit?.close();
  await deps.passwords.close();
  await deps.sessions.close().catch((err: unknown) => deps.logger.error({ err }, "closing sessions failed"));
  await deps.store.close().catch((err: unknown) => deps.logger.error({ err }, "closing store failed"));
}

export interface RunningService {
  deps: Deps;
  server: ServerType;
  port: number;
  /** Null when MONITOR_SCHEDULER=off. */
  scheduler: Scheduler | null;
  stop(): Promise<void>;
}

/** Shutdown's bounds: in-flight requests and running checks get DRAIN_TIMEOUT_MS to finish,
 * then closing the pools and stores gets CLOSE_TIMEOUT_MS. Past either, shutdown goes on without
 * waiting (a stuck statement or an unreachable Redis must not keep a process alive). */
export const DRAIN_TIMEOUT_MS = 10_000;
export const CLOSE_TIMEOUT_MS = 2_000;

export async function startService(
  deps: Deps,
  options: { drainTimeoutMs?: number; closeTimeoutMs?: number } = {},
): Promise<RunningService> {
  const app = createApp(deps);
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serveApp(app.fetch, { port: deps.config.port, hostname: deps.config.host, ...serveLimits(deps, JSON_RPC_PATHS) }, () => {
      s.off("error", refused);
      resolve(s);
    });
    // Before listening, an 'error' is the address refused (in use, not this machine's, a
    // privileged port): one line naming the settings, as for any other that points wrong.
    const refused = (err: NodeJS.ErrnoException) => reject(listenError(err, deps.config.host, deps.config.port));
    s.once("error", refused);
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : deps.config.port;
  deps.logger.info({ port, store: deps.store.kind, sessions: deps.sessions.kind }, "pulse listening");
  const scheduler = deps.config.monitor.scheduler ? createScheduler(deps) : null;
  scheduler?.start();

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      deps.logger.info("shutting down: draining HTTP and running checks");
      // What is in flight finishes first, within the drain's bound: requests, and the checks
      // running now (no more are claimed), which would otherwise take the close's bound and
      // leave the pools, the audit trail's last write and the stores unclosed.
      const drainTimeoutMs = options.drainTimeoutMs ?? DRAIN_TIMEOUT_MS;
      const drainUntil = Date.now() + drainTimeoutMs;
      // Checks still running a moment before the drain's end are stopped, in time for their
      // statements' records to be written and their tables released.
      const checksWithinMs = Math.max(0, Math.min(deps.config.monitor.stopTimeoutMs, drainTimeoutMs - CANCEL_GRACE_MS));
      // Requests still running then are stopped too, in time to answer 503 shutting_down (and
      // cancel their statements) before the drain cuts their connections.
      const stopRequests = setTimeout(
        () => deps.shuttingDown.abort(new DomainError("shutting_down", "This Pulse instance is shutting down and stopped the request: send it again")),
        Math.max(0, drainTimeoutMs - CANCEL_GRACE_MS),
      );
      await Promise.all([drain(server as Server, drainTimeoutMs), scheduler && settlesWithin(scheduler.stop(checksWithinMs), drainTimeoutMs)]);
      clearTimeout(stopRequests);
      // Then the notifications those requests and runs started (they answered without waiting
      // for them), in what is left of the drain's bound: one cut short is sent again after its
      // claim runs out, with the same X-Pulse-Notification.
      await settlesWithin(deliveriesSettled(deps), Math.max(0, drainUntil - Date.now()));
      const closeTimeoutMs = options.closeTimeoutMs ?? CLOSE_TIMEOUT_MS;
      const closed = await settlesWithin(closeDeps(deps), closeTimeoutMs);
      if (closed) deps.logger.info("shut down");
      else deps.logger.warn({ close_timeout_ms: closeTimeoutMs, ...unwritten(deps) }, "shut down without waiting for everything to close");
    })());
  return { deps, server, port, scheduler, stop };
}

/** What an exit now loses of the audit trail (the process ends without its last write): said
 * in the log line of every exit that does not wait for it. */
export const unwritten = (deps: Pick<Deps, "audit">) => ({ audit_records_lost: deps.audit?.pending ?? 0 });


/** Why an address could not be listened on, and which setting to change. */
const LISTEN_REASONS: Record<string, { setting: "PORT" | "HOST"; reason: string }> = {
  EADDRINUSE: { setting: "PORT", reason: "address already in use (another process listens there: stop it, or set PORT to a free port)" },
  EACCES: { setting: "PORT", reason: "permission denied (a port below 1024 needs privileges: set PORT to 1024 or above)" },
  EADDRNOTAVAIL: { setting: "HOST", reason: "address not available on this machine (set HOST to one of its addresses, or 0.0.0.0)" },
};

/** Anything else (a HOST that does not resolve, an address family the machine lacks) is HOST's. */
function listenError(err: NodeJS.ErrnoException, host: string, port: number): Error {
  const known = err.code ? LISTEN_REASONS[err.code] : undefined;
  return new StartupError(`${known?.setting ?? "HOST"}: cannot listen on ${host}:${port}: ${known?.reason ?? reasonOf(err)}`);
}

/** How often a draining server closes the kept-alive sockets whose request has finished. */
const CLOSE_IDLE_EVERY_MS = 100;

/** Stops accepting connections and resolves when in-flight requests have finished (or the
 * timeout passed, after which remaining connections are cut). */
function drain(server: Server, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    // A kept-alive socket would carry new requests into a draining server (a pooling proxy
    // sends them as long as it may) and, idle, hold close() open for its keep-alive timeout:
    // what arrives on one now is answered with Connection: close, and each is closed as soon
    // as its request is done.
    server.on("request", (_req: IncomingMessage, res: ServerResponse) => {
      res.shouldKeepAlive = false;
    });
    const closingIdle = setInterval(() => server.closeIdleConnections(), CLOSE_IDLE_EVERY_MS);
    const done = () => {
      clearInterval(closingIdle);
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      server.closeAllConnections();
      done();
    }, timeoutMs);
    server.close(done);
    server.closeIdleConnections();
  });
}
