// Threat: growing Redis without end. Every key Pulse writes there must expire, so that neither
// a client (failed logins for made-up emails from many addresses, sessions opened and ended,
// API keys made and revoked, unknown keys, sign-ups, /ask, MCP) nor an instance that dies
// without shutting down (its heartbeat never withdrawn) leaves a key that lives for ever. What
// each key holds is bounded besides (tests/security/session-flood.test.ts and others).

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";
import { startPulse } from "../support/pulse-process.js";
import { createPgDatabase, REDIS_URL, redisWithPrefix } from "../support/services.js";

/** Every key under `prefix` with its TTL in ms (-1: none). */
async function keysWithTtl(raw: Redis, prefix: string): Promise<Map<string, number>> {
  const found = new Map<string, number>();
  let cursor = "0";
  do {
    const [next, batch] = await raw.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
    cursor = next;
    for (const key of batch) found.set(key.slice(prefix.length), await raw.pttl(key));
  } while (cursor !== "0");
  return found;
}

const withoutTtl = (keys: Map<string, number>) => [...keys].filter(([, ttl]) => ttl < 0).map(([key]) => key);

describe("Redis keys written for a client's requests", () => {
  let h: Harness;
  beforeAll(async () => {
    // One trusted proxy: the client's address is X-Forwarded-For's, so one client plays many.
    h = await createHarness({ sessions: "redis", env: { TRUST_PROXY: "1" } });
  });
  afterAll(async () => h?.close());

  it("all expire", async () => {
    const user = await h.newUser();
    for (let i = 0; i < 30; i++) {
      const failed = await h.call("POST", "/login", { form: { username: `nobody${i}@example.com`, password: "not the password" }, headers: { "x-forwarded-for": `198.51.100.${i}` } });
      expect(failed.status).toBe(401);
      await h.call("GET", "/users/me", { token: `pulse_${"x".repeat(40)}${i}`, headers: { "x-forwarded-for": `203.0.113.${i}` } });
    }
    const connected = await h.newConnectedUser();
    const connectionId = (await h.call("GET", "/databases", { token: connected.token })).body[0].id as number;
    for (let i = 0; i < 5; i++) {
      const login = await h.call("POST", "/login", { form: { username: user.email, password: user.password } });
      expect((await h.call("POST", "/logout", { token: login.body.access_token })).status).toBe(204);
      // A key's own session, connected (its schema cached), and a key left unrevoked.
      const key = await h.call("POST", "/api/keys", { token: connected.token, json: { name: `k${i}`, scopes: ["query"] } });
      expect((await h.call("POST", `/databases/connect_db/${connectionId}`, { token: key.body.key })).status).toBe(200);
      if (i > 0) expect((await h.call("DELETE", `/api/keys/${key.body.id}`, { token: connected.token })).status).toBe(204);
    }
    await h.call("POST", "/ask", { token: connected.token, json: { question: "how many albums?", thread_id: "t-1" } });
    await h.call("POST", "/mcp", { token: connected.token, json: { jsonrpc: "2.0", id: 1, method: "tools/list" }, headers: { accept: "application/json, text/event-stream" } });

    const keys = await keysWithTtl(h.redis!.raw, h.redis!.prefix);
    expect(keys.size).toBeGreaterThan(60);
    expect(withoutTtl(keys)).toEqual([]);
  });
});

describe("Redis keys of an instance that dies without shutting down", () => {
  const redis = redisWithPrefix();
  const dataDir = mkdtempSync(path.join(tmpdir(), "pulse-redis-bounds-"));
  let meta: Awaited<ReturnType<typeof createPgDatabase>>;
  beforeAll(async () => {
    meta = await createPgDatabase("pulse_meta");
  });
  afterAll(async () => {
    await redis.cleanup();
    await meta?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("all expire, the instance's heartbeat within its expiry", async () => {
    const pulse = await startPulse({ DATA_DIR: dataDir, BCRYPT_ROUNDS: "4", DATABASE_URL: meta.url, REDIS_URL, REDIS_PREFIX: redis.prefix });
    try {
      const email = "crash@example.com";
      const password = "correct horse battery";
      expect((await pulse.call("POST", "/users/", { json: { name: "Crash", email, password } })).status).toBe(201);
      const login = await fetch(`${pulse.base}/login`, { method: "POST", body: new URLSearchParams({ username: email, password }) });
      expect(login.status).toBe(200);
    } finally {
      pulse.child.kill("SIGKILL");
      await pulse.exited;
    }
    const keys = await keysWithTtl(redis.raw, redis.prefix);
    expect(keys.has("instances")).toBe(true);
    expect(withoutTtl(keys)).toEqual([]);
    // Announcements last three heartbeats of 5 s unrenewed; the key no longer than they do.
    expect(keys.get("instances")).toBeLessThanOrEqual(15_000);
  });
});
