// One contract, two session stores: the in-process store (embedded) and Redis (production)
// must behave the same for sessions, rate-limit counters, messages and the instance count.

import { Redis } from "ioredis";
import { randomInt, randomUUID } from "node:crypto";
import { tmpdir } from "node:os";
import { afterAll, describe, expect, it } from "vitest";

import { loadConfig } from "../../src/config.js";
import { openSessionStore } from "../../src/lifecycle.js";
import { createLogger } from "../../src/logger.js";
import { createMemorySessionStore } from "../../src/sessions/memory.js";
import { createRedisSessionStore } from "../../src/sessions/redis.js";
import type { SessionStore } from "../../src/sessions/types.js";
import { REDIS_URL, redisWithPrefix } from "../support/services.js";

const redis = redisWithPrefix();
afterAll(async () => redis.cleanup());

/** A user of its own per test: what one user owns must not be another test's. */
const newUserId = () => randomInt(1, 2 ** 31);

const stores: [string, () => SessionStore][] = [
  ["memory", () => createMemorySessionStore()],
  ["redis", () => createRedisSessionStore(new Redis(redis.redis.options))],
];

describe.each(stores)("session store contract: %s", (_kind, make) => {
  const store = make();
  afterAll(() => store.close());

  it("creates a session record with owner, creation time and idle status", async () => {
    const id = randomUUID();
    const created = await store.create(id, 42, 60);
    expect(created).toMatchObject({ session_id: id, user_id: 42, status: "idle", db_id: null, db_schema: null });
    expect(await store.get(id)).toEqual(created);
  });

  it("leaves the cached schema out unless asked for it", async () => {
    const id = randomUUID();
    await store.create(id, 3, 60);
    await store.update(id, 3, { status: "connected", db_id: 1, db_schema: "t(a int)" }, 60);
    expect((await store.get(id))?.db_schema).toBeNull();
    expect((await store.get(id))?.db_id).toBe(1);
    expect((await store.get(id, { withSchema: true }))?.db_schema).toBe("t(a int)");
  });

  it("returns null for an unknown session and false when touching it", async () => {
    expect(await store.get(randomUUID())).toBeNull();
    expect(await store.touch(randomUUID(), 1, 60)).toBe(false);
  });

  it("updates fields, removes fields set to null, and keeps owner and creation time", async () => {
    const id = randomUUID();
    const created = await store.create(id, 7, 60);
    const connected = await store.update(id, 7, { status: "connected", db_id: 101, connected_at: 1_700_000_000, db_schema: "CREATE TABLE t(a int)" }, 60);
    expect(connected).toMatchObject({ user_id: 7, created_at: created.created_at, status: "connected", db_id: 101, db_schema: "CREATE TABLE t(a int)" });
    const cleared = await store.update(id, 7, { status: "idle", db_id: null, db_schema: null }, 60);
    expect(cleared).toMatchObject({ status: "idle", db_id: null, db_schema: null, connected_at: 1_700_000_000 });
  });

  it("recreates a deleted session on update, owned by the given user", async () => {
    const id = randomUUID();
    await store.create(id, 9, 60);
    expect(await store.delete(id)).toBe(true);
    expect(await store.delete(id)).toBe(false);
    expect(await store.get(id)).toBeNull();
    const again = await store.update(id, 9, { status: "connected", db_id: 3 }, 60);
    expect(again).toMatchObject({ user_id: 9, status: "connected", db_id: 3 });
  });

  it("expires sessions after their TTL unless touched", async () => {
    const id = randomUUID();
    await store.create(id, 1, 1);
    expect(await store.touch(id, 1, 1)).toBe(true);
    await new Promise((r) => setTimeout(r, 1100));
    expect(await store.get(id)).toBeNull();
  });

  it("counts hits in a fixed window, reads with by=0, and reports when it resets", async () => {
    const key = `test:${randomUUID()}`;
    expect((await store.hit(key, 60, 0)).count).toBe(0);
    expect((await store.hit(key, 60)).count).toBe(1);
    const second = await store.hit(key, 60);
    expect(second.count).toBe(2);
    expect(second.resetsInSeconds).toBeGreaterThan(0);
    expect(second.resetsInSeconds).toBeLessThanOrEqual(60);
    expect((await store.hit(key, 60, 0)).count).toBe(2);
  });

  it("keeps a bounded list, newest items only, oldest first", async () => {
    const key = `thread:${randomUUID()}`;
    expect(await store.listItems(key)).toEqual([]);
    for (const item of ["a", "b", "c", "d"]) await store.pushBounded(key, item, 3, 60, "renewed");
    expect(await store.listItems(key)).toEqual(["b", "c", "d"]);
  });

  it("expires a bounded list after its TTL", async () => {
    const key = `thread:${randomUUID()}`;
    await store.pushBounded(key, "x", 3, 1, "renewed");
    await new Promise((r) => setTimeout(r, 1100));
    expect(await store.listItems(key)).toEqual([]);
  });

  it("renews a bounded list's TTL on every push, or counts it from the first push only", async () => {
    const renewed = `thread:${randomUUID()}`;
    const fromFirst = `thread:${randomUUID()}`;
    for (const key of [renewed, fromFirst]) await store.pushBounded(key, "a", 3, 2, key === renewed ? "renewed" : "from-first");
    await new Promise((r) => setTimeout(r, 1200));
    for (const key of [renewed, fromFirst]) await store.pushBounded(key, "b", 3, 2, key === renewed ? "renewed" : "from-first");
    await new Promise((r) => setTimeout(r, 1200));
    // 2.4 s after the first push, 1.2 s after the second.
    expect(await store.listItems(renewed)).toEqual(["a", "b"]);
    expect(await store.listItems(fromFirst)).toEqual([]);
  });

  it("appends while-kept only to a list that still exists, keeping its TTL", async () => {
    const key = `thread:${randomUUID()}`;
    await store.pushBounded(key, "a", 3, 60, "while-kept");
    expect(await store.listItems(key)).toEqual([]);
    await store.pushBounded(key, "a", 3, 2, "from-first");
    await new Promise((r) => setTimeout(r, 1200));
    await store.pushBounded(key, "b", 3, 60, "while-kept");
    expect(await store.listItems(key)).toEqual(["a", "b"]);
    await new Promise((r) => setTimeout(r, 1200));
    // 2.4 s after the first push: gone, and not made again.
    expect(await store.listItems(key)).toEqual([]);
    await store.pushBounded(key, "c", 3, 60, "while-kept");
    expect(await store.listItems(key)).toEqual([]);
  });

  describe("deleteOwned", () => {
    /** A user with two logins (one connected), an API key's session, a conversation of theirs
     * and one of the key's; and another user's session and conversation. */
    async function owners() {
      const [userId, otherId] = [newUserId(), newUserId()];
      const [login, connected, key, other] = [randomUUID(), randomUUID(), `key:${randomUUID()}`, randomUUID()];
      await store.create(login, userId, 60);
      await store.create(connected, userId, 60);
      await store.update(connected, userId, { status: "connected", db_id: 1, db_schema: "t(a int)" }, 60);
      await store.update(key, userId, { status: "connected", db_id: 1 }, 60);
      await store.create(other, otherId, 60);
      const threads = { user: `thread:${randomUUID()}`, key: `thread:${randomUUID()}`, other: `thread:${randomUUID()}` };
      await store.pushBounded(threads.user, "a", 3, 60, "from-first", { userId });
      await store.pushBounded(threads.key, "a", 3, 60, "from-first", { userId, sessionId: key });
      await store.pushBounded(threads.other, "a", 3, 60, "from-first", { userId: otherId });
      return { userId, sessions: { login, connected, key, other }, threads };
    }

    it("deletes every session record and list of the user, and nothing of another user's", async () => {
      const { userId, sessions, threads } = await owners();
      await store.deleteOwned(userId);
      for (const id of [sessions.login, sessions.connected, sessions.key]) expect(await store.get(id, { withSchema: true })).toBeNull();
      expect(await store.listItems(threads.user)).toEqual([]);
      expect(await store.listItems(threads.key)).toEqual([]);
      expect(await store.get(sessions.other)).not.toBeNull();
      expect(await store.listItems(threads.other)).toEqual(["a"]);
    });

    it("deletes only a session's record and the lists pushed for it when it names the session", async () => {
      const { userId, sessions, threads } = await owners();
      await store.deleteOwned(userId, sessions.key);
      expect(await store.get(sessions.key)).toBeNull();
      expect(await store.listItems(threads.key)).toEqual([]);
      expect(await store.get(sessions.login)).not.toBeNull();
      expect(await store.listItems(threads.user)).toEqual(["a"]);
    });

    it("deletes a named session's record even when it was never indexed as the user's", async () => {
      const id = randomUUID();
      await store.create(id, newUserId(), 60);
      await store.deleteOwned(newUserId(), id);
      expect(await store.get(id)).toBeNull();
    });

    it("deletes what was made again after a deletion, and what a session recreated by update holds", async () => {
      const userId = newUserId();
      const id = randomUUID();
      await store.create(id, userId, 60);
      await store.deleteOwned(userId);
      await store.update(id, userId, { status: "connected", db_id: 2 }, 60);
      await store.deleteOwned(userId);
      expect(await store.get(id)).toBeNull();
    });

    it("leaves a list pushed without an owner", async () => {
      const userId = newUserId();
      const key = `thread:${randomUUID()}`;
      await store.pushBounded(key, "a", 3, 60, "renewed");
      await store.deleteOwned(userId);
      expect(await store.listItems(key)).toEqual(["a"]);
    });

    it("deletes a list made without an owner once it is pushed to with one (a conversation started before the index was kept)", async () => {
      const userId = newUserId();
      const key = `thread:${randomUUID()}`;
      await store.pushBounded(key, "a", 3, 60, "from-first");
      await store.pushBounded(key, "b", 3, 60, "while-kept", { userId });
      await store.deleteOwned(userId);
      expect(await store.listItems(key)).toEqual([]);
    });
  });

  it("deletes lists and counters by their keys", async () => {
    const [list, counter, kept] = [`known:${randomUUID()}`, `test:${randomUUID()}`, `test:${randomUUID()}`];
    await store.pushBounded(list, "a", 3, 60, "renewed");
    await store.hit(counter, 60);
    await store.hit(kept, 60);
    await store.deleteKeys({ lists: [list], counters: [counter] });
    expect(await store.listItems(list)).toEqual([]);
    expect((await store.hit(counter, 60, 0)).count).toBe(0);
    expect((await store.hit(kept, 60, 0)).count).toBe(1);
  });

  it("starts a new window after the old one ends", async () => {
    const key = `test:${randomUUID()}`;
    await store.hit(key, 1);
    await store.hit(key, 1);
    await new Promise((r) => setTimeout(r, 1100));
    expect((await store.hit(key, 1)).count).toBe(1);
  });

  it("delivers a published message to every subscriber of its channel, and only there", async () => {
    const channel = `test-${randomUUID()}`;
    const got: string[] = [];
    await store.subscribe(channel, (m) => got.push(`a:${m}`));
    await store.subscribe(channel, (m) => got.push(`b:${m}`));
    await store.subscribe(`${channel}-other`, (m) => got.push(`other:${m}`));
    await store.publish(channel, "42");
    await expect.poll(() => got.sort()).toEqual(["a:42", "b:42"]);
  });

  it("counts itself as the one live instance when alone, however often asked", async () => {
    expect((await store.instances()).count).toBe(1);
    expect((await store.instances()).count).toBe(1);
  });
});

describe("redis presence", () => {
  /** A short heartbeat, so arrivals and departures show within a test. */
  const HEARTBEAT_MS = 50;
  const instancesOf = (deployment: ReturnType<typeof redisWithPrefix>, options: { heartbeatMs?: number; expiryMs?: number } = {}) =>
    createRedisSessionStore(new Redis(deployment.redis.options), { heartbeatMs: HEARTBEAT_MS, ...options });

  it("counts the instances sharing a key prefix, not those of another deployment", async () => {
    const deployment = redisWithPrefix();
    const other = redisWithPrefix();
    const [a, b, stranger] = [instancesOf(deployment), instancesOf(deployment), instancesOf(other)];
    try {
      const [aCount, bCount, strangerCount] = await Promise.all([a.instances(), b.instances(), stranger.instances()]);
      await expect.poll(() => [aCount.count, bCount.count]).toEqual([2, 2]);
      expect(strangerCount.count).toBe(1);
      expect(await deployment.raw.zcard(`${deployment.prefix}instances`)).toBe(2);
    } finally {
      await Promise.all([a.close(), b.close(), stranger.close()]);
      await Promise.all([deployment.cleanup(), other.cleanup()]);
    }
  });

  it("drops an instance that closed, once the others have counted without it for an expiry window", async () => {
    const deployment = redisWithPrefix();
    const [a, b] = [instancesOf(deployment), instancesOf(deployment)];
    try {
      const live = await a.instances();
      await b.instances();
      await expect.poll(() => live.count).toBe(2);
      await b.close();
      expect(await deployment.raw.zcard(`${deployment.prefix}instances`)).toBe(1);
      await expect.poll(() => live.count, { timeout: 3000 }).toBe(1);
    } finally {
      await a.close();
      await deployment.cleanup();
    }
  });

  it("drops an instance that stopped announcing itself without leaving, once its announcement expires and an expiry window passes", async () => {
    const deployment = redisWithPrefix();
    const a = instancesOf(deployment);
    // Announces once, for 300 ms, and not again within the test: as if its process had died.
    const dead = instancesOf(deployment, { heartbeatMs: 60_000, expiryMs: 300 });
    try {
      const live = await a.instances();
      await dead.instances();
      await expect.poll(() => live.count).toBe(2);
      await expect.poll(() => live.count, { timeout: 3000 }).toBe(1);
    } finally {
      await Promise.all([a.close(), dead.close()]);
      await deployment.cleanup();
    }
  });

  it("keeps the last count when a heartbeat fails, and reports the failure", async () => {
    const deployment = redisWithPrefix();
    const client = new Redis(deployment.redis.options);
    const a = createRedisSessionStore(client, { heartbeatMs: HEARTBEAT_MS });
    const b = instancesOf(deployment);
    try {
      const failures: unknown[] = [];
      const live = await a.instances((err) => failures.push(err));
      await b.instances();
      await expect.poll(() => live.count).toBe(2);
      client.disconnect();
      await expect.poll(() => failures.length).toBeGreaterThan(1);
      expect(live.count).toBe(2);
    } finally {
      await a.close().catch(() => undefined); // its connection is gone
      await b.close();
      await deployment.cleanup();
    }
  });
});

describe("redis publish and subscribe", () => {
  it("reaches the instances of one deployment (same key prefix), not other deployments", async () => {
    const same = createRedisSessionStore(new Redis(redis.redis.options));
    const publisher = createRedisSessionStore(new Redis(redis.redis.options));
    const other = redisWithPrefix();
    const stranger = createRedisSessionStore(other.redis);
    try {
      const got: string[] = [];
      await same.subscribe("evictions", (m) => got.push(`same:${m}`));
      await stranger.subscribe("evictions", (m) => got.push(`stranger:${m}`));
      await publisher.publish("evictions", "7");
      await expect.poll(() => got).toEqual(["same:7"]);
      await new Promise((r) => setTimeout(r, 100));
      expect(got).toEqual(["same:7"]);
    } finally {
      await Promise.all([same.close(), publisher.close(), stranger.close()]);
      await other.cleanup();
    }
  });
});

describe("redis session layout (seed 004)", () => {
  it("stores a session as the hash session:{id} with a TTL", async () => {
    const store = createRedisSessionStore(new Redis(redis.redis.options));
    try {
      const id = randomUUID();
      await store.create(id, 5, 86400);
      const key = `${redis.prefix}session:${id}`;
      expect(await redis.raw.type(key)).toBe("hash");
      expect(await redis.raw.hgetall(key)).toMatchObject({ user_id: "5", status: "idle" });
      const ttl = await redis.raw.ttl(key);
      expect(ttl).toBeGreaterThan(86000);
    } finally {
      await store.close();
    }
  });

  it("indexes what a user owns in owned:{user id}, kept as long as its longest-lived key and pruned of expired ones", async () => {
    const store = createRedisSessionStore(new Redis(redis.redis.options));
    try {
      const userId = newUserId();
      const index = `${redis.prefix}owned:${userId}`;
      const renewed = randomUUID();
      await store.create(renewed, userId, 60);
      expect(await redis.raw.ttl(index)).toBeGreaterThan(55);
      // A renewal lengthens the index with the session; a key kept less long does not shorten it.
      await store.touch(renewed, userId, 3600);
      expect(await redis.raw.ttl(index)).toBeGreaterThan(3500);
      await store.pushBounded(`thread:${randomUUID()}`, "a", 3, 60, "from-first", { userId });
      expect(await redis.raw.ttl(index)).toBeGreaterThan(3500);
      expect(await redis.raw.zcard(index)).toBe(2);
      // Entries of keys long expired (past what clocks may differ by, 300 s) are dropped as the
      // index grows; one that expired lately, by a clock perhaps ahead, is kept.
      const now = Math.floor(Date.now() / 1000);
      await redis.raw.zadd(index, now - 400, JSON.stringify(["", "session:long-gone"]), now - 100, JSON.stringify(["", "session:lately"]));
      await store.create(randomUUID(), userId, 60);
      expect((await redis.raw.zrange(index, 0, -1)).filter((e) => e.includes("gone") || e.includes("lately"))).toEqual([JSON.stringify(["", "session:lately"])]);
      expect(await redis.raw.zcard(index)).toBe(4);
      await store.deleteOwned(userId);
      expect(await redis.raw.exists(index)).toBe(0);
    } finally {
      await store.close();
    }
  });

  it("answers from its copy while nothing changes, and sees a change made through another client at once", async () => {
    const [here, there] = [createRedisSessionStore(new Redis(redis.redis.options)), createRedisSessionStore(new Redis(redis.redis.options))];
    try {
      const id = randomUUID();
      const channel = `${redis.prefix}session-changes`;
      await expect.poll(async () => (await redis.raw.pubsub("NUMSUB", channel))[1]).toBeGreaterThanOrEqual(2);
      const settle = () => new Promise((r) => setTimeout(r, 50)); // announcements in flight arrive
      await settle();
      await there.create(id, 9, 60);
      await settle();
      expect((await here.get(id))?.user_id).toBe(9);
      // Written behind the store's back (no announcement): the copy still answers, which shows
      // that reads are served locally...
      await redis.raw.hset(`${redis.prefix}session:${id}`, "status", "connected", "db_id", "5");
      expect((await here.get(id))?.status).toBe("idle");
      // ...and a change through a store is seen by the other one as soon as it is announced.
      await there.update(id, 9, { status: "connected", db_id: 6 }, 60);
      await expect.poll(async () => (await here.get(id))?.db_id).toBe(6);
      await there.delete(id);
      await expect.poll(async () => here.get(id)).toBeNull();
    } finally {
      await Promise.all([here.close(), there.close()]);
    }
  });
});

describe("REDIS_PREFIX: deployments sharing one Redis", () => {
  /** An instance's session store, opened as start-up opens it, from the settings. */
  const instanceOf = (prefix: string) =>
    openSessionStore(
      loadConfig({ NODE_ENV: "test", DATA_DIR: tmpdir(), JWT_SECRET: "j".repeat(32), SECRETS_KEY: "a".repeat(64), REDIS_URL, REDIS_PREFIX: prefix }),
      createLogger("silent"),
      { heartbeatMs: 50 },
    );

  it("keeps sessions, rate limits, instance counts and messages apart, each under its own prefix", async () => {
    const [blue, green] = [redisWithPrefix(), redisWithPrefix()];
    const [blue1, blue2, green1] = await Promise.all([instanceOf(blue.prefix), instanceOf(blue.prefix), instanceOf(green.prefix)]);
    try {
      const id = randomUUID();
      await blue1.create(id, 1, 60);
      expect((await blue2.get(id))?.user_id).toBe(1);
      expect(await green1.get(id)).toBeNull();
      expect(await blue.raw.exists(`${blue.prefix}session:${id}`)).toBe(1);
      expect(await blue.raw.exists(`session:${id}`)).toBe(0);

      for (let i = 0; i < 3; i++) await blue1.hit("login:someone", 60);
      expect((await blue2.hit("login:someone", 60, 0)).count).toBe(3);
      expect((await green1.hit("login:someone", 60, 0)).count).toBe(0);
      expect(await blue.raw.get(`${blue.prefix}ratelimit:login:someone`)).toBe("3");

      const [blueCount, , greenCount] = await Promise.all([blue1.instances(), blue2.instances(), green1.instances()]);
      await expect.poll(() => blueCount.count).toBe(2);
      expect(greenCount.count).toBe(1);

      const got: string[] = [];
      await blue2.subscribe("evictions", (m) => got.push(`blue:${m}`));
      await green1.subscribe("evictions", (m) => got.push(`green:${m}`));
      await blue1.publish("evictions", "7");
      await expect.poll(() => got).toEqual(["blue:7"]);
      await new Promise((r) => setTimeout(r, 100));
      expect(got).toEqual(["blue:7"]);
    } finally {
      await Promise.all([blue1.close(), blue2.close(), green1.close()]);
      await Promise.all([blue.cleanup(), green.cleanup()]);
    }
  });
});
