// A Redis restarted without its data forgets which instances are live: the first instance to
// announce itself again finds itself alone until the others' next heartbeats. Were it to take
// the whole of a database's budget meanwhile, while the others still took their shares, the
// deployment would run more than the setting. An instance's count falls only once the lower
// count has held for a whole expiry window, which the others' heartbeats fill again first.

import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";
import { startPrivateRedis } from "../support/private-redis.js";
import { sqliteTarget } from "../support/targets.js";
import { startTcpRelay, type TcpRelay } from "../support/tcp-relay.js";

const PER_MINUTE = 4;
/** Announcements then last 6 s: long enough for the queries below on a busy machine, short
 * enough for a test. */
const HEARTBEAT_MS = 2000;

describe("connection budgets across a Redis restarted without its data", () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let raw: Redis;
  let relay: TcpRelay;
  let a: Harness;
  let b: Harness;
  beforeAll(async () => {
    redis = await startPrivateRedis();
    raw = new Redis(redis.url, { maxRetriesPerRequest: 0 });
    raw.on("error", () => undefined); // the test restarts the server under it
    // B reaches Redis through a relay, so the test can keep B away a while after the restart.
    relay = await startTcpRelay({ host: "127.0.0.1", port: redis.port });
    const env = { CONNECTION_QUERIES_PER_MINUTE: String(PER_MINUTE) };
    a = await createHarness({ sessions: "redis", heartbeatMs: HEARTBEAT_MS, env: { ...env, REDIS_URL: redis.url } });
    b = await createHarness({ shareWith: a, heartbeatMs: HEARTBEAT_MS, env: { ...env, REDIS_URL: `redis://127.0.0.1:${relay.port}` } });
  });
  afterAll(async () => {
    relay?.refuse(false);
    raw?.disconnect();
    await b?.close();
    await a?.close();
    await relay?.close();
    await redis?.stop();
  });

  it("keeps the first instance back to its share until the others have had a whole expiry window to announce themselves", async () => {
    await expect.poll(async () => (await a.deps.sessions.instances()).count, { timeout: 10_000 }).toBe(2);
    await expect.poll(async () => (await b.deps.sessions.instances()).count, { timeout: 10_000 }).toBe(2);
    const user = await a.newUser();
    const added = await a.call("POST", "/databases/add_db_connection", { token: user.token, json: (await sqliteTarget(a.sqliteRoot)).body });
    expect(added.status, added.text).toBe(201);
    const id = added.body.db_connection.id as number;

    // Restarted empty, and B's heartbeat held back (for less than an expiry window).
    relay.refuse(true);
    await redis.stop();
    relay.cut();
    await redis.start();
    const instancesKey = `${a.config.redisPrefix}instances`;
    await vi.waitFor(async () => expect(await raw.zcard(instancesKey)).toBe(1), { timeout: 5000, interval: 20 });
    await new Promise((resolve) => setTimeout(resolve, 100)); // A's heartbeat has counted by now

    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await a.call("POST", `/databases/${id}/query`, { token: user.token, json: { sql: "SELECT 1" } })).status);
    expect(await raw.zcard(instancesKey)).toBe(1); // still alone in Redis's count
    expect(statuses).toEqual([200, 200, 429]);

    relay.refuse(false);
    await expect.poll(async () => (await a.deps.sessions.instances()).count, { timeout: 10_000 }).toBe(2);
    await expect.poll(async () => (await b.deps.sessions.instances()).count, { timeout: 10_000 }).toBe(2);
  }, 30_000);
});
