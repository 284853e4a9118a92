// A Redis that evicts keys when full (a maxmemory with allkeys-lru or a volatile-* policy) may
// drop Pulse's rate-limit and token counters, budgets' shares and sessions before their time:
// limits would reset under memory pressure, which a user filling Redis could bring about. Pulse
// says so once at start, read from INFO (which managed services allow where CONFIG is refused).

import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createHarness } from "../support/harness.js";
import { startPrivateRedis } from "../support/private-redis.js";

const WARNING = "Redis evicts keys when full";

let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
let admin: Redis;
beforeAll(async () => {
  redis = await startPrivateRedis();
  admin = new Redis(redis.url);
});
afterAll(async () => {
  admin?.disconnect();
  await redis?.stop();
});

/** The lines a server on this Redis logs as it starts. */
async function startupLines(): Promise<string[]> {
  const h = await createHarness({ sessions: "redis", env: { REDIS_URL: redis.url } });
  try {
    return h.logs.filter((line) => line.includes(WARNING));
  } finally {
    await h.close();
  }
}

describe("a Redis set to evict keys when full", () => {
  it.each(["allkeys-lru", "volatile-ttl"])("is named at start (maxmemory-policy %s)", async (policy) => {
    await admin.config("SET", "maxmemory", "256mb");
    await admin.config("SET", "maxmemory-policy", policy);
    const lines = await startupLines();
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 40, maxmemory_policy: policy });
  });

  it("is not, with noeviction or no maxmemory", async () => {
    await admin.config("SET", "maxmemory", "256mb");
    await admin.config("SET", "maxmemory-policy", "noeviction");
    expect(await startupLines()).toEqual([]);
    await admin.config("SET", "maxmemory", "0");
    await admin.config("SET", "maxmemory-policy", "allkeys-lru");
    expect(await startupLines()).toEqual([]);
  });
});
