// Sessions in Redis: hash `session:{id}` with a TTL renewed by authenticated calls (at most once
// a minute, src/http/auth.ts), so any instance can serve any session. Also messages between instances, and their count.

import type { ChainableCommander, Redis } from "ioredis";
import { createLRU } from "lru.min";

import { DomainError } from "../errors.js";

import { createRedisPresence, type PresenceOptions } from "./presence.js";
import { SOCKET_TIMEOUT_MS } from "./redis-client.js";
import { hashFromFields, newSessionHash, recordFromHash, STATE_FIELDS, type Owner, type SessionRecord, type SessionStore } from "./types.js";

const sessionKey = (id: string) => `session:${id}`;

/** What a user owns here (deleteOwned): a sorted set of [session id or "", key], each scored
 * with when its key expires at the latest, so keys long gone are dropped from it. */
const ownedKey = (userId: number) => `owned:${userId}`;
const ownedEntry = (owner: Owner, key: string) => JSON.stringify([owner.sessionId ?? "", key]);
const readOwnedEntry = (entry: string) => {
  const [sessionId, key] = JSON.parse(entry) as [string, string];
  return { entry, sessionId, key };
};

/** How long past its score (its key's expiry, by the clock of the instance that wrote it) an
 * entry is kept: instances' clocks may differ, and one ahead must not drop the entry of a key
 * that still lives. */
const CLOCK_SKEW_SECONDS = 300;

/** Adds `key`, kept `ttlSeconds` from now at most, to its owner's index in `tx`. The index is
 * kept as long as its longest-lived key (EXPIRE NX gives a new one its TTL, GT only lengthens
 * it), and drops what has expired whenever it grows, so it stays as small as what they own. */
function indexOwned(tx: ChainableCommander, owner: Owner, key: string, ttlSeconds: number): ChainableCommander {
  const index = ownedKey(owner.userId);
  const now = Math.floor(Date.now() / 1000);
  return tx
    .zremrangebyscore(index, "-inf", now - CLOCK_SKEW_SECONDS)
    .zadd(index, "GT", now + ttlSeconds, ownedEntry(owner, key))
    .expire(index, ttlSeconds, "NX")
    .expire(index, ttlSeconds, "GT");
}

/** Where every change to a session is announced, in the same transaction as the change. */
const SESSION_CHANGES = "session-changes";

/**
 * Session state (without the schema) read here is kept this long: most calls only need to know
 * which database their session is connected to, and asking Redis costs a round trip per
 * request. Changes are announced in the transaction that makes them and every instance drops
 * its copy on the announcement; the age limit bounds what a missed announcement can cost
 * (TTL expiry is not announced). Nothing is kept while the subscriber is not listening.
 */
const STATE_CACHE_MS = 2_000;
/** How often the subscriber is pinged: as often as a silent connection is given to answer. */
const SUBSCRIBER_PING_MS = SOCKET_TIMEOUT_MS;
const STATE_CACHE_MAX = 10_000;

/** `presence` tunes the heartbeat of instances() (tests shorten it). */
export function createRedisSessionStore(redis: Redis, presence: PresenceOptions = {}): SessionStore {
  // Channels are not keys: ioredis does not prefix them, so instances sharing a key prefix
  // (one deployment) share channels and other deployments on the same Redis do not.
  const channelName = (channel: string) => `${redis.options.keyPrefix ?? ""}${channel}`;
  const handlers = new Map<string, Array<(message: string) => void>>();
  // A connection in subscriber mode can do nothing else: a second one.
  // It may queue its (re)subscriptions until connected: nothing waits on them. No ready check:
  // ioredis sends SUBSCRIBE while the connection is still "connect"ing (it is allowed while
  // Redis loads), and the check's INFO that follows is refused in subscriber mode, which
  // ioredis treats as fatal (seen with two instances starting at once). No automatic
  // re-subscription either: ioredis sends it after a reconnect and drops its promise, so one
  // that timed out (a Redis slow to answer) was an unhandled rejection, which ends the process;
  // `listen` re-subscribes instead. No CLIENT SETINFO on connect: without a ready check,
  // ioredis declares the connection ready once those two answer or fail, without checking that
  // it is still the same connection; when it closed first (its setup swallowed by the network,
  // then cut), the dead one was declared ready, which cancels the reconnect for good (ioredis
  // issue 2099, fixed in 6.0).
  const subscriber = redis.duplicate({ enableOfflineQueue: true, enableReadyCheck: false, autoResubscribe: false, disableClientInfo: true });
  subscriber.on("message", (name: string, message: string) => {
    for (const h of handlers.get(name) ?? []) h(message);
  });
  const subscribe = async (channel: string, handler: (message: string) => void) => {
    const name = channelName(channel);
    handlers.set(name, [...(handlers.get(name) ?? []), handler]);
    await subscriber.subscribe(name);
  };

  const states = createLRU<string, { record: SessionRecord | null; at: number }>({ max: STATE_CACHE_MAX });
  /** Announcements seen so far: a read that overlapped one may have read the old state. */
  let changesSeen = 0;
  let listening = false;
  const gapListeners: (() => void)[] = [];
  const gap = () => {
    for (const listener of gapListeners) listener();
  };
  const forget = (sessionId: string) => {
    changesSeen++;
    states.delete(sessionId);
  };
  handlers.set(channelName(SESSION_CHANGES), [forget]);
  // (Re)subscribing to every channel is idempotent; the cache serves only once Redis has
  // confirmed it.
  const listen = () =>
    subscriber.subscribe(...handlers.keys()).then(
      () => {
        if (listening) return;
        listening = true;
        gap();
      },
      () => undefined, // not listening: every read goes to Redis; the next ping tries again
    );
  subscriber.on("ready", () => void listen());
  // Pings find a silent subscriber out (its socket times out, and it reconnects), and a
  // subscription that failed is tried again.
  const pinger = setInterval(() => {
    if (subscriber.status !== "ready") return;
    if (!listening) void listen();
    else subscriber.ping().catch(() => undefined);
  }, SUBSCRIBER_PING_MS);
  pinger.unref();
  subscriber.on("close", () => {
    const was = listening;
    listening = false;
    changesSeen++;
    states.clear();
    if (was) gap();
  });
  // The main connection reports Redis being down (health, requests); down here only means
  // not listening, which the "close" handler has dealt with.
  subscriber.on("error", () => undefined);
  void listen();
  const instances = createRedisPresence(redis, presence);
  const announce = (sessionId: string) => [channelName(SESSION_CHANGES), sessionId] as const;

  async function readState(sessionId: string): Promise<SessionRecord | null> {
    const values = await redis.hmget(sessionKey(sessionId), ...STATE_FIELDS);
    const hash: Record<string, string> = {};
    STATE_FIELDS.forEach((field, i) => {
      if (values[i] !== null && values[i] !== undefined) hash[field] = values[i];
    });
    return recordFromHash(sessionId, hash);
  }

  const store: SessionStore = {
    kind: "redis",
    async create(sessionId, userId, ttlSeconds) {
      const hash = newSessionHash(userId);
      forget(sessionId);
      const tx = redis.multi().hset(sessionKey(sessionId), hash).expire(sessionKey(sessionId), ttlSeconds);
      await indexOwned(tx, { userId, sessionId }, sessionKey(sessionId), ttlSeconds)
        .publish(...announce(sessionId))
        .exec();
      return recordFromHash(sessionId, hash)!;
    },
    async get(sessionId, options = {}) {
      if (options.withSchema) return recordFromHash(sessionId, await redis.hgetall(sessionKey(sessionId)));
      const now = Date.now();
      const kept = states.get(sessionId);
      if (kept && listening && now - kept.at < STATE_CACHE_MS) return kept.record && { ...kept.record };
      const seen = changesSeen;
      const record = await readState(sessionId);
      if (listening && seen === changesSeen) states.set(sessionId, { record, at: now });
      return record && { ...record };
    },
    async touch(sessionId, userId, ttlSeconds) {
      // Indexed again too: its index must outlive it. A session that has expired is indexed
      // for nothing, until its time in the index passes.
      const tx = redis.multi().expire(sessionKey(sessionId), ttlSeconds);
      const results = (await indexOwned(tx, { userId, sessionId }, sessionKey(sessionId), ttlSeconds).exec()) ?? [];
      return results[0]?.[1] === 1;
    },
    async update(sessionId, userId, fields, ttlSeconds) {
      const key = sessionKey(sessionId);
      const { set, remove } = hashFromFields(fields);
      // HSETNX keeps the original owner and creation time when the hash still exists, and
      // recreates them when it had expired or been disconnected.
      forget(sessionId);
      const tx = redis.multi();
      for (const [field, value] of Object.entries(newSessionHash(userId))) tx.hsetnx(key, field, value);
      if (Object.keys(set).length > 0) tx.hset(key, set);
      if (remove.length > 0) tx.hdel(key, ...remove);
      indexOwned(tx, { userId, sessionId }, key, ttlSeconds);
      tx.expire(key, ttlSeconds).hgetall(key).publish(...announce(sessionId));
      const results = (await tx.exec()) ?? [];
      const hash = results.at(-2)?.[1] as Record<string, string>;
      return recordFromHash(sessionId, hash)!;
    },
    async delete(sessionId) {
      forget(sessionId);
      const results = (await redis.multi().del(sessionKey(sessionId)).publish(...announce(sessionId)).exec()) ?? [];
      return results[0]?.[1] === 1;
    },
    async hit(key, windowSeconds, by = 1) {
      const results = (await redis
        .multi()
        .incrby(`ratelimit:${key}`, by)
        .expire(`ratelimit:${key}`, windowSeconds, "NX")
        .ttl(`ratelimit:${key}`)
        .exec()) ?? [[null, 0], [null, 0], [null, windowSeconds]];
      return { count: Number(results[0]?.[1]), resetsInSeconds: Math.max(1, Number(results[2]?.[1])) };
    },
    async pushBounded(key, value, maxItems, ttlSeconds, ttl, owner) {
      const list = `list:${key}`;
      // RPUSHX makes no list (and LTRIM of a missing key makes none).
      const tx = ttl === "while-kept" ? redis.multi().rpushx(list, value) : redis.multi().rpush(list, value);
      tx.ltrim(list, -maxItems, -1);
      if (ttl === "renewed") tx.expire(list, ttlSeconds);
      else if (ttl === "from-first") tx.expire(list, ttlSeconds, "NX");
      // Indexed for a TTL from now, which lasts at least as long as the list (it lives at most
      // that long from its first push); at every push, so that one made before the index was
      // kept (or by an instance that keeps none, in a rolling upgrade) is found too.
      if (owner) indexOwned(tx, owner, list, ttlSeconds);
      await tx.exec();
    },
    async listItems(key) {
      return redis.lrange(`list:${key}`, 0, -1);
    },
    async deleteOwned(userId, sessionId) {
      const index = ownedKey(userId);
      const entries = (await redis.zrange(index, 0, -1)).map(readOwnedEntry).filter((owned) => sessionId === undefined || owned.sessionId === sessionId);
      const keys = entries.map((owned) => owned.key);
      // A session's own record goes with it, indexed or not (made before the index was kept).
      if (sessionId !== undefined) keys.push(sessionKey(sessionId));
      if (keys.length === 0) return;
      const tx = redis.multi().del(...keys);
      // Only what was read: a key indexed meanwhile stays indexed.
      if (entries.length > 0) tx.zrem(index, ...entries.map((owned) => owned.entry));
      // Every instance drops its copy of the deleted sessions' state.
      const sessions = keys.filter((key) => key.startsWith(sessionKey(""))).map((key) => key.slice(sessionKey("").length));
      for (const id of new Set(sessions)) {
        forget(id);
        tx.publish(...announce(id));
      }
      await tx.exec();
    },
    async deleteKeys({ lists = [], counters = [] }) {
      const keys = [...lists.map((key) => `list:${key}`), ...counters.map((key) => `ratelimit:${key}`)];
      if (keys.length > 0) await redis.del(...keys);
    },
    async publish(channel, message) {
      await redis.publish(channelName(channel), message);
    },
    subscribe,
    listening: () => listening,
    onSubscriptionGap(listener) {
      gapListeners.push(listener);
    },
    instances: (onError) => instances.join(onError),
    async ping() {
      await redis.ping();
    },
    async close() {
      clearInterval(pinger);
      await instances.leave();
      // A Redis that is away cannot be told goodbye: just drop the connections.
      await Promise.all([subscriber, redis].map((client) => client.quit().catch(() => client.disconnect())));
    },
  };
  return Object.assign(store, unavailableWhenDown(store));
}

/** The calls a request waits on: while Redis is away they fail as 503 sessions_unavailable
 * (the HTTP edge's answer), not as a driver error that would be a 500. */
const REQUEST_CALLS = ["create", "get", "touch", "update", "delete", "hit", "pushBounded", "listItems", "deleteOwned", "deleteKeys", "publish", "ping"] as const;

function unavailableWhenDown(store: SessionStore): Pick<SessionStore, (typeof REQUEST_CALLS)[number]> {
  const wrapped: Record<string, unknown> = {};
  for (const name of REQUEST_CALLS) {
    const call = store[name] as (...args: unknown[]) => Promise<unknown>;
    wrapped[name] = (...args: unknown[]) =>
      call.apply(store, args).catch((err: unknown) => {
        throw Object.assign(new DomainError("sessions_unavailable", "Sessions are unavailable: Redis cannot be reached; retry shortly"), { cause: err });
      });
  }
  return wrapped as Pick<SessionStore, (typeof REQUEST_CALLS)[number]>;
}
