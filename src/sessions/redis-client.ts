// The Redis connection of the session store, with every wait bounded: a request that needs
// Redis while it is away fails at once (503 sessions_unavailable) instead of queueing, a
// command on a connection that stopped answering fails after COMMAND_TIMEOUT_MS, the connection
// itself is replaced after SOCKET_TIMEOUT_MS, and the client reconnects by itself, forever,
// once it has started.

import { Redis } from "ioredis";

import type { Logger } from "../logger.js";
import { reasonOf, StartupError, whereOf } from "../startup-error.js";

const CONNECT_TIMEOUT_MS = 3_000;
const COMMAND_TIMEOUT_MS = 2_000;
/** A connection that answers nothing this long after a command is dropped and replaced: a
 * command timing out does not end its connection, and a silent socket (a NAT or load balancer
 * that forgot it, a paused VM, a failover) would otherwise be kept for ever. The session store
 * pings its subscriber as often (SUBSCRIBER_PING_MS), so that one is found out too. */
export const SOCKET_TIMEOUT_MS = 5_000;
/** Reconnection backs off to this: Redis coming back is noticed within about a second. */
const MAX_RECONNECT_DELAY_MS = 1_000;

/** Connects once, with every key (and, through the session store, every channel) under
 * `prefix` (REDIS_PREFIX). A Redis that cannot be reached at start ends start-up with a
 * StartupError naming REDIS_URL and the reason (no retries: a wrong setting should not look
 * like a hang). */
export async function connectRedis(url: string, prefix: string, logger: Logger): Promise<Redis> {
  let started = false;
  let lastError: unknown;
  let redis: Redis;
  try {
    redis = new Redis(url, {
      lazyConnect: true,
      keyPrefix: prefix,
      connectTimeout: CONNECT_TIMEOUT_MS,
      commandTimeout: COMMAND_TIMEOUT_MS,
      socketTimeout: SOCKET_TIMEOUT_MS,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      // A command that failed its request must not run later, after a reconnect.
      autoResendUnfulfilledCommands: false,
      retryStrategy: (attempt) => (started ? Math.min(attempt * 100, MAX_RECONNECT_DELAY_MS) : null),
    });
  } catch (err) {
    throw new StartupError(`REDIS_URL: ${reasonOf(err)}`);
  }
  // Without a listener ioredis prints "[ioredis] Unhandled error event" for every attempt.
  redis.on("error", (err: unknown) => (lastError = err));
  let down = false;
  redis.on("reconnecting", () => {
    if (down) return;
    down = true;
    logger.warn({ reason: reasonOf(lastError ?? "connection closed") }, "Redis unavailable: sessions answer 503 until it returns; reconnecting");
  });
  redis.on("ready", () => {
    if (!down) return;
    down = false;
    logger.info("Redis reachable again");
  });
  try {
    await redis.connect();
  } catch (err) {
    redis.disconnect();
    throw new StartupError(`REDIS_URL: cannot connect to Redis at ${whereOf(url)} (${reasonOf(lastError ?? err)})`);
  }
  // ioredis selects the URL's database itself, and hears a refusal (a number past the server's
  // `databases`) only as an error event: it went on in database 0, beside whatever uses that.
  // (Database 0 is never selected: proxies that take no SELECT serve it.)
  const database = redis.options.db ?? 0;
  if (database !== 0) {
    try {
      await redis.select(database);
    } catch (err) {
      redis.disconnect();
      throw new StartupError(`REDIS_URL: Redis at ${whereOf(url)} has no database ${database} (${reasonOf(err)}); its 'databases' setting says how many it has`);
    }
  }
  started = true;
  await warnIfEvicting(redis, logger);
  return redis;
}

/** Redis set to evict keys under memory pressure (a `maxmemory` with any policy but noeviction,
 * the volatile ones included: Pulse's counters all expire) may drop what Pulse keeps there to
 * enforce its limits: login, sign-up and question counters, the model tokens of the hour,
 * budgets' shares, sessions. Pulse still runs: said once at start, for the operator. INFO, not
 * CONFIG, which managed Redis services often refuse; a server that refuses INFO too is left be. */
async function warnIfEvicting(redis: Redis, logger: Logger): Promise<void> {
  let memory: string;
  try {
    memory = await redis.info("memory");
  } catch {
    return;
  }
  const field = (name: string) => new RegExp(`^${name}:(.*)$`, "m").exec(memory)?.[1]?.trim();
  const policy = field("maxmemory_policy");
  if (Number(field("maxmemory") ?? 0) > 0 && policy !== undefined && policy !== "noeviction") {
    logger.warn(
      { maxmemory_policy: policy },
      "Redis evicts keys when full: Pulse's rate limits, budgets and sessions could be forgotten early; set maxmemory-policy noeviction (see README, Security)",
    );
  }
}
