// Sessions in process memory, for the embedded single-instance mode (no REDIS_URL). Same
// contract as the Redis store; entries expire lazily and in a periodic sweep.

import { hashFromFields, newSessionHash, recordFromHash, type Owner, type SessionStore } from "./types.js";

interface Entry {
  hash: Record<string, string>;
  expiresAt: number;
}

/** A session record or a list a user owns (deleteOwned), and the session it is of ("" for the
 * user's own). */
interface Owned {
  map: Map<string, unknown>;
  key: string;
  sessionId: string;
}

export function createMemorySessionStore(now: () => number = Date.now): SessionStore {
  const sessions = new Map<string, Entry>();
  const counters = new Map<string, { count: number; expiresAt: number }>();
  const lists = new Map<string, { items: string[]; expiresAt: number }>();
  const subscribers = new Map<string, Array<(message: string) => void>>();
  /** Per user, what they own, by map and key; pruned of what is gone at each sweep. */
  const owned = new Map<number, Map<string, Owned>>();
  let lastSweep = now();

  const own = (owner: Owner, map: Map<string, unknown>, key: string) => {
    const index = owned.get(owner.userId) ?? new Map<string, Owned>();
    index.set(`${map === sessions ? "session" : "list"}:${key}`, { map, key, sessionId: owner.sessionId ?? "" });
    owned.set(owner.userId, index);
  };

  const live = <T extends { expiresAt: number }>(map: Map<string, T>, key: string): T | undefined => {
    const entry = map.get(key);
    if (entry && entry.expiresAt <= now()) {
      map.delete(key);
      return undefined;
    }
    return entry;
  };
  const sweep = () => {
    if (now() - lastSweep < 60_000) return;
    lastSweep = now();
    for (const map of [sessions, counters, lists] as Map<string, { expiresAt: number }>[]) {
      for (const [key, entry] of map) if (entry.expiresAt <= lastSweep) map.delete(key);
    }
    for (const [userId, index] of owned) {
      for (const [name, entry] of index) if (!entry.map.has(entry.key)) index.delete(name);
      if (index.size === 0) owned.delete(userId);
    }
  };

  return {
    kind: "memory",
    async create(sessionId, userId, ttlSeconds) {
      sweep();
      const hash = newSessionHash(userId);
      sessions.set(sessionId, { hash, expiresAt: now() + ttlSeconds * 1000 });
      own({ userId, sessionId }, sessions, sessionId);
      return recordFromHash(sessionId, hash)!;
    },
    async get(sessionId, options = {}) {
      const entry = live(sessions, sessionId);
      if (!entry) return null;
      const record = recordFromHash(sessionId, entry.hash);
      return record && !options.withSchema ? { ...record, db_schema: null, connection_string: null } : record;
    },
    // The index here keeps what still exists, however long: a renewal changes nothing in it.
    async touch(sessionId, _userId, ttlSeconds) {
      const entry = live(sessions, sessionId);
      if (entry) entry.expiresAt = now() + ttlSeconds * 1000;
      return entry !== undefined;
    },
    async update(sessionId, userId, fields, ttlSeconds) {
      sweep();
      const entry: Entry = live(sessions, sessionId) ?? { hash: newSessionHash(userId), expiresAt: 0 };
      const { set, remove } = hashFromFields(fields);
      Object.assign(entry.hash, set);
      for (const field of remove) delete entry.hash[field];
      entry.expiresAt = now() + ttlSeconds * 1000;
      sessions.set(sessionId, entry);
      own({ userId, sessionId }, sessions, sessionId);
      return recordFromHash(sessionId, entry.hash)!;
    },
    async delete(sessionId) {
      return live(sessions, sessionId) !== undefined && sessions.delete(sessionId);
    },
    async hit(key, windowSeconds, by = 1) {
      sweep();
      const counter = live(counters, key) ?? { count: 0, expiresAt: now() + windowSeconds * 1000 };
      counter.count += by;
      counters.set(key, counter);
      return { count: counter.count, resetsInSeconds: Math.max(1, Math.ceil((counter.expiresAt - now()) / 1000)) };
    },
    async pushBounded(key, value, maxItems, ttlSeconds, ttl, owner) {
      sweep();
      const kept = live(lists, key);
      if (!kept && ttl === "while-kept") return;
      const list = kept ?? { items: [], expiresAt: 0 };
      list.items.push(value);
      list.items.splice(0, Math.max(0, list.items.length - maxItems));
      if (!kept || ttl === "renewed") list.expiresAt = now() + ttlSeconds * 1000;
      lists.set(key, list);
      if (owner) own(owner, lists, key);
    },
    async listItems(key) {
      return [...(live(lists, key)?.items ?? [])];
    },
    async deleteOwned(userId, sessionId) {
      const index = owned.get(userId) ?? new Map<string, Owned>();
      for (const [name, entry] of index) {
        if (sessionId !== undefined && entry.sessionId !== sessionId) continue;
        entry.map.delete(entry.key);
        index.delete(name);
      }
      if (sessionId !== undefined) sessions.delete(sessionId);
    },
    async deleteKeys({ lists: listKeys = [], counters: counterKeys = [] }) {
      for (const key of listKeys) lists.delete(key);
      for (const key of counterKeys) counters.delete(key);
    },
    async publish(channel, message) {
      for (const handler of subscribers.get(channel) ?? []) handler(message);
    },
    async subscribe(channel, handler) {
      subscribers.set(channel, [...(subscribers.get(channel) ?? []), handler]);
    },
    // In-process delivery never misses a message.
    listening: () => true,
    onSubscriptionGap() {},
    // In-process sessions cannot be shared: this instance is the only one.
    async instances() {
      return { count: 1 };
    },
    async ping() {},
    async close() {
      subscribers.clear();
      sessions.clear();
      counters.clear();
      lists.clear();
      owned.clear();
    },
  };
}
