// Sessions in Redis: hash `session:{id}` with a TTL renewed on each authenticated call, so any
// instance can serve any session.

import type { Redis } from "ioredis";

import { hashFromFields, newSessionHash, recordFromHash, STATE_FIELDS, type SessionStore } from "./types.js";

const sessionKey = (id: string) => `session:${id}`;

export function createRedisSessionStore(redis: Redis): SessionStore {
  // Channels are not keys: ioredis does not prefix them, so instances sharing a key prefix
  // (one deployment) share channels and other deployments on the same Redis do not.
  const channelName = (channel: string) => `${redis.options.keyPrefix ?? ""}${channel}`;
  const handlers = new Map<string, Array<(message: string) => void>>();
  // A connection in subscriber mode can do nothing else: a second one, made on first use.
  let subscriber: Redis | undefined;
  return {
    kind: "redis",
    async create(sessionId, userId, ttlSeconds) {
      const hash = newSessionHash(userId);
      await redis.multi().hset(sessionKey(sessionId), hash).expire(sessionKey(sessionId), ttlSeconds).exec();
      return recordFromHash(sessionId, hash)!;
    },
    async get(sessionId, options = {}) {
      if (options.withSchema) return recordFromHash(sessionId, await redis.hgetall(sessionKey(sessionId)));
      const values = await redis.hmget(sessionKey(sessionId), ...STATE_FIELDS);
      const hash: Record<string, string> = {};
      STATE_FIELDS.forEach((field, i) => {
        if (values[i] !== null && values[i] !== undefined) hash[field] = values[i];
      });
      return recordFromHash(sessionId, hash);
    },
    async touch(sessionId, ttlSeconds) {
      return (await redis.expire(sessionKey(sessionId), ttlSeconds)) === 1;
    },
    async update(sessionId, userId, fields, ttlSeconds) {
      const key = sessionKey(sessionId);
      const { set, remove } = hashFromFields(fields);
      // HSETNX keeps the original owner and creation time when the hash still exists, and
      // recreates them when it had expired or been disconnected.
      const tx = redis.multi();
      for (const [field, value] of Object.entries(newSessionHash(userId))) tx.hsetnx(key, field, value);
      if (Object.keys(set).length > 0) tx.hset(key, set);
      if (remove.length > 0) tx.hdel(key, ...remove);
      tx.expire(key, ttlSeconds).hgetall(key);
      const results = (await tx.exec()) ?? [];
      const hash = results.at(-1)?.[1] as Record<string, string>;
      return recordFromHash(sessionId, hash)!;
    },
    async delete(sessionId) {
      return (await redis.del(sessionKey(sessionId))) === 1;
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
    async pushBounded(key, value, maxItems, ttlSeconds) {
      await redis.multi().rpush(`list:${key}`, value).ltrim(`list:${key}`, -maxItems, -1).expire(`list:${key}`, ttlSeconds).exec();
    },
    async listItems(key) {
      return redis.lrange(`list:${key}`, 0, -1);
    },
    async publish(channel, message) {
      await redis.publish(channelName(channel), message);
    },
    async subscribe(channel, handler) {
      if (!subscriber) {
        subscriber = redis.duplicate();
        subscriber.on("message", (name: string, message: string) => {
          for (const h of handlers.get(name) ?? []) h(message);
        });
      }
      const name = channelName(channel);
      handlers.set(name, [...(handlers.get(name) ?? []), handler]);
      await subscriber.subscribe(name);
    },
    async ping() {
      await redis.ping();
    },
    async close() {
      await subscriber?.quit();
      await redis.quit();
    },
  };
}
