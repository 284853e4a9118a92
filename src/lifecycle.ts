// Builds the dependencies from config, for the server (serve.ts) and the commands run beside it,
// and closes them in order.

import { shutdownController } from "./http/standing.js";
import { createAuditTrail, type AuditTrail } from "./audit/trail.js";
import { createApiKeyVerifier, type ApiKeyVerifier } from "./auth/api-keys.js";
import { createPasswordHasher } from "./auth/passwords.js";
import { createRevocationWatch, type RevocationWatch } from "./auth/revocation-watch.js";
import { createTokenStanding, type TokenStanding } from "./auth/token-standing.js";

import { loadPrompts } from "../agents/prompts.js";
import type { ChatModel } from "../agents/model.js";
import { isModelConfigured, type Config } from "./config.js";
import { ConnectorCache } from "./connectors/cache.js";
import { counted } from "./counted.js";
import { countConnectionAttempt } from "./connectors/connect-failures.js";
import { loadGuard } from "./connectors/guard/index.js";
import { createTargetGate } from "./connectors/target-gate.js";
import type { Deps } from "./deps.js";
import { newInstanceId } from "./instance-id.js";
import { createLogger, type Logger } from "./logger.js";
import { createMetrics, type Metrics } from "./metrics.js";
import { createMonitoring } from "./monitoring/runtime.js";
import { createMemorySessionStore } from "./sessions/memory.js";
import { createRedisSessionStore } from "./sessions/redis.js";
import { connectRedis } from "./sessions/redis-client.js";
import type { PresenceOptions } from "./sessions/presence.js";
import type { SessionStore } from "./sessions/types.js";
import { findApiKeyByHash, markApiKeyUsed } from "./store/api-keys.js";
import { AskTurns } from "./ask-turns.js";
import { openStore, storeLocation, type Store } from "./store/client.js";
import { countOpenAlerts } from "./store/monitoring-alerts.js";
import { readStanding } from "./store/revocations.js";

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

/** The model client, or null when none is configured. Imported when first needed: LangChain and
 * the OpenAI client are about 0.7 s of CPU to load, which `pulse check` (no model) never spends. */
export async function modelFor(config: Config, logger: Logger): Promise<ChatModel | null> {
  if (!isModelConfigured(config.openai)) return null;
  const { createChatModel } = await import("../agents/model.js");
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
      // A command run beside the servers asks no model.
      model: options.serving === false ? null : await modelFor(config, logger),
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

/** What an exit now loses of the audit trail (the process ends without its last write): said
 * in the log line of every exit that does not wait for it. */
export const unwritten = (deps: Pick<Deps, "audit">) => ({ audit_records_lost: deps.audit?.pending ?? 0 });

