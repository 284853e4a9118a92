// The session store contract, shared by the Redis store (any number of instances) and the
// in-process store (embedded, single instance). One contract test suite runs against both.

export interface SessionRecord {
  session_id: string;
  user_id: number;
  /** Unix seconds. */
  created_at: number;
  status: "idle" | "connected";
  db_id: number | null;
  connected_at: number | null;
  /** Cached schema of the connected database, as rendered text/JSON. */
  db_schema: string | null;
  /** What `db_schema` is the schema of: the connection as it was at connect_db, as session-info
   * shows it (password masked; seed 004's hash field). Read with the schema. */
  connection_string: string | null;
}

export type SessionFields = Partial<Pick<SessionRecord, "status" | "db_id" | "connected_at" | "db_schema" | "connection_string">>;

export interface CounterHit {
  count: number;
  /** Seconds until the window that `count` belongs to ends. */
  resetsInSeconds: number;
}

/** Whom a session record or a list was made for, so that deleteOwned finds it without a scan:
 * the user, and the session when it is that session's alone (an API key's conversations). */
export interface Owner {
  userId: number;
  sessionId?: string;
}

/** The live instances sharing a session store, as a count kept without a round trip. */
export interface Presence {
  /** This instance included, so at least 1; as of the last heartbeat. */
  readonly count: number;
}

export interface SessionStore {
  readonly kind: "redis" | "memory";
  create(sessionId: string, userId: number, ttlSeconds: number): Promise<SessionRecord>;
  /** The session without its cached schema, which can be large and is rarely needed; ask for
   * it with `withSchema`. */
  get(sessionId: string, options?: { withSchema?: boolean }): Promise<SessionRecord | null>;
  /** Renews the TTL, and keeps the session in `userId`'s index (deleteOwned) as long; false when
   * the session does not exist (expired or disconnected). */
  touch(sessionId: string, userId: number, ttlSeconds: number): Promise<boolean>;
  /** Sets fields (null removes one) and renews the TTL; creates nothing if missing. */
  update(sessionId: string, userId: number, fields: SessionFields, ttlSeconds: number): Promise<SessionRecord>;
  delete(sessionId: string): Promise<boolean>;
  /** Fixed-window counter for rate limits: adds `by` (default 1; 0 reads) to `key`, starting a
   * window on the first hit. */
  hit(key: string, windowSeconds: number, by?: number): Promise<CounterHit>;
  /** Appends to a list kept to its newest `maxItems`. `ttl: "renewed"` sets the list's TTL again
   * on every push; `"from-first"` only on the push that makes the list, so it lives at most
   * `ttlSeconds` however often it is pushed to; `"while-kept"` appends only to a list that still
   * exists (keeping its TTL), making none when it has expired. A list with an `owner` is deleted
   * with what they own. */
  pushBounded(key: string, value: string, maxItems: number, ttlSeconds: number, ttl: "renewed" | "from-first" | "while-kept", owner?: Owner): Promise<void>;
  /** The list, oldest first; empty when missing or expired. */
  listItems(key: string): Promise<string[]>;
  /** Deletes the session records of `userId` and the lists pushed for them (their owner), or
   * with `sessionId` only that session's record and the lists pushed for it. Each user's index
   * of what they own lives as long as the longest-lived of it, and no longer. */
  deleteOwned(userId: number, sessionId?: string): Promise<void>;
  /** Deletes lists (pushBounded's keys) and counters (hit's keys). */
  deleteKeys(keys: { lists?: string[]; counters?: string[] }): Promise<void>;
  /** Tells `message` to every subscriber of `channel` on every instance sharing this store,
   * this one included. Delivery is at most once: a subscriber that is disconnected misses it. */
  publish(channel: string, message: string): Promise<void>;
  /** Calls `handler` with each message published on `channel` from now on. */
  subscribe(channel: string, handler: (message: string) => void): Promise<void>;
  /** Whether messages published now reach this instance's subscriptions (false while the
   * subscribing connection is down or not yet subscribed again). */
  listening(): boolean;
  /** Calls `listener` when messages may have been missed: when the subscribing connection
   * drops, and again once it listens again (what was learned in between may be stale too). */
  onSubscriptionGap(listener: () => void): void;
  /** Announces this instance to the others sharing the store, until close(), and counts the
   * live ones (a heartbeat refreshes both); resolves after the first count. Every call shares
   * the same heartbeat. One that fails keeps the last count and tells `onError`. */
  instances(onError?: (err: unknown) => void): Promise<Presence>;
  ping(): Promise<void>;
  /** Also leaves the instances, which the others notice at their next heartbeat. */
  close(): Promise<void>;
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

/** Hash fields <-> record, shared by both stores so they cannot disagree on encoding. */
export function recordFromHash(sessionId: string, hash: Record<string, string>): SessionRecord | null {
  if (!hash.user_id) return null;
  return {
    session_id: sessionId,
    user_id: Number(hash.user_id),
    created_at: Number(hash.created_at ?? nowSeconds()),
    status: hash.status === "connected" ? "connected" : "idle",
    db_id: hash.db_id ? Number(hash.db_id) : null,
    connected_at: hash.connected_at ? Number(hash.connected_at) : null,
    db_schema: hash.db_schema ?? null,
    connection_string: hash.connection_string ?? null,
  };
}

export function hashFromFields(fields: SessionFields): { set: Record<string, string>; remove: string[] } {
  const set: Record<string, string> = {};
  const remove: string[] = [];
  for (const [name, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    if (value === null) remove.push(name);
    else set[name] = String(value);
  }
  return { set, remove };
}

/** The hash fields of a session other than its cached schema and what it is of. */
export const STATE_FIELDS = ["user_id", "created_at", "status", "db_id", "connected_at"] as const;

export const newSessionHash = (userId: number) => ({
  user_id: String(userId),
  created_at: String(nowSeconds()),
  status: "idle",
});
