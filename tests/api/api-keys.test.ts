// POST/GET/DELETE /api/keys: a key is created with its scopes, connections and expiry, its
// secret answered once and stored only as a hash, listed without it, and revoked for good, with
// what Redis kept for it.

import { createHash } from "node:crypto";

import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

import { startQueuedFakeOpenAI, type FakeOpenAI, type FakeStep } from "../support/fake-openai.js";
import { createHarness, type Harness } from "../support/harness.js";
import { pgAdmin } from "../support/services.js";
import { sqliteTarget } from "../support/targets.js";

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(async () => {
  await h?.close();
});

const KEY_SHAPE = /^pulse_[A-Za-z0-9_-]{43}$/;

async function newConnection(token: string): Promise<number> {
  const res = await h.call("POST", "/databases/add_db_connection", { token, json: (await sqliteTarget(h.sqliteRoot)).body });
  expect(res.status).toBe(201);
  return res.body.db_connection.id as number;
}

async function createKey(token: string, json: Record<string, unknown>) {
  const res = await h.call("POST", "/api/keys", { token, json });
  expect(res.status, res.text).toBe(201);
  return res.body as { id: number; key: string; prefix: string; last_four: string; [field: string]: unknown };
}

describe("POST /api/keys", () => {
  it("answers the key once, recognisable by its prefix, with what it allows", async () => {
    const user = await h.newUser();
    const db = await newConnection(user.token);
    const before = Date.now();
    const res = await h.call("POST", "/api/keys", {
      token: user.token,
      json: { name: "reporting", scopes: ["query", "monitoring:read"], connection_ids: [db], expires_in_days: 30 },
    });
    expect(res.status).toBe(201);
    const key = res.body.key as string;
    expect(key).toMatch(KEY_SHAPE);
    expect(res.body).toMatchObject({
      id: expect.any(Number),
      name: "reporting",
      prefix: key.slice(0, 10),
      last_four: key.slice(-4),
      scopes: ["query", "monitoring:read"],
      connection_ids: [db],
      last_used_at: null,
    });
    const expires = Date.parse(res.body.expires_at as string);
    expect(expires).toBeGreaterThanOrEqual(before + 30 * 86_400_000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 30 * 86_400_000);

    // It works as a bearer credential.
    const query = await h.call("POST", `/databases/${db}/query`, { token: key, json: { sql: "SELECT 1 AS one" } });
    expect(query.status).toBe(200);
    expect(query.body.data.rows).toEqual([[1]]);
  });

  it("makes a key for every connection, never expiring, when neither is given", async () => {
    const user = await h.newUser();
    const created = await createKey(user.token, { name: "all", scopes: ["ask"] });
    expect(created).toMatchObject({ connection_ids: null, expires_at: null, scopes: ["ask"] });
    const other = await createKey(user.token, { name: "dated", scopes: ["query"], expires_at: "2099-01-01T00:00:00Z" });
    expect(other.expires_at).toBe("2099-01-01T00:00:00.000Z");
    expect(other.key).not.toBe(created.key);
  });

  it("keeps only the key's SHA-256 in the store, never the key", async () => {
    const user = await h.newUser();
    const created = await createKey(user.token, { name: "hashed", scopes: ["query"] });
    const rows = await pgAdmin<Record<string, unknown>>("SELECT * FROM api_keys WHERE id = $1", h.pgDatabase!.name, [created.id]);
    expect(rows).toHaveLength(1);
    expect(JSON.stringify(rows)).not.toContain(created.key);
    expect(JSON.stringify(rows)).not.toContain(created.key.slice(10, -4));
    expect(rows[0]!.secret_hash).toBe(createHash("sha256").update(created.key).digest("hex"));
  });

  it("never logs the key", async () => {
    const user = await h.newUser();
    const created = await createKey(user.token, { name: "quiet", scopes: ["query"] });
    await h.call("GET", "/databases", { token: created.key });
    await h.call("DELETE", `/api/keys/${created.id}`, { token: user.token });
    await h.call("GET", "/databases", { token: created.key });
    const logs = h.logs.join("");
    // Request lines name the key by id and prefix.
    expect(logs).toContain(`"key_id":${created.id},"key_prefix":"${created.prefix}"`);
    expect(logs).not.toContain(created.key);
  });

  it.each([
    ["no name", { scopes: ["query"] }, "body.name"],
    ["no scopes", { name: "k", scopes: [] }, "body.scopes"],
    ["an unknown scope", { name: "k", scopes: ["admin"] }, "body.scopes.0"],
    ["an expiry in the past", { name: "k", scopes: ["query"], expires_at: "2020-01-01T00:00:00Z" }, "body.expires_at"],
    ["an expiry that is not ISO 8601", { name: "k", scopes: ["query"], expires_at: "tomorrow" }, "body.expires_at"],
    ["both kinds of expiry", { name: "k", scopes: ["query"], expires_at: "2099-01-01T00:00:00Z", expires_in_days: 3 }, "body.expires_in_days"],
    ["zero days", { name: "k", scopes: ["query"], expires_in_days: 0 }, "body.expires_in_days"],
    ["an empty connection list", { name: "k", scopes: ["query"], connection_ids: [] }, "body.connection_ids"],
    ["an unknown connection", { name: "k", scopes: ["query"], connection_ids: [2_000_000_000] }, "body.connection_ids"],
    ["an undeclared field", { name: "k", scopes: ["query"], connection: 1 }, "body.connection"],
  ])("refuses %s with 422 naming the field", async (_, json, path) => {
    const user = await h.newUser();
    const res = await h.call("POST", "/api/keys", { token: user.token, json });
    expect(res.status).toBe(422);
    expect(res.body.code).toBe("invalid_input");
    expect(res.body.errors).toEqual(expect.arrayContaining([expect.objectContaining({ path })]));
    expect((await h.call("GET", "/api/keys", { token: user.token })).body).toEqual([]);
  });

  it("refuses another user's connection as an unknown one (422)", async () => {
    const owner = await h.newUser();
    const db = await newConnection(owner.token);
    const other = await h.newUser();
    const res = await h.call("POST", "/api/keys", { token: other.token, json: { name: "k", scopes: ["query"], connection_ids: [db] } });
    expect(res.status).toBe(422);
    expect(res.body.errors).toEqual([{ path: "body.connection_ids", message: `no connection ${db} among yours` }]);
  });
});

describe("GET /api/keys", () => {
  it("lists the user's own keys without their secrets, with when each was last used", async () => {
    const user = await h.newUser();
    const stranger = await h.newUser();
    const first = await createKey(user.token, { name: "first", scopes: ["query"] });
    const second = await createKey(user.token, { name: "second", scopes: ["monitoring:read", "monitoring:write"] });
    await createKey(stranger.token, { name: "theirs", scopes: ["query"] });
    expect((await h.call("GET", "/databases", { token: first.key })).status).toBe(200);

    const res = await h.call("GET", "/api/keys", { token: user.token });
    expect(res.status).toBe(200);
    expect(res.body.map((k: { name: string }) => k.name)).toEqual(["first", "second"]);
    for (const { key } of [first, second]) expect(res.text).not.toContain(key);
    expect(res.body[0]).not.toHaveProperty("key");
    expect(res.body[0]).toMatchObject({ id: first.id, prefix: first.prefix, last_four: first.last_four });
    expect(res.body[1]).toMatchObject({ id: second.id, last_used_at: null });
    // The use is written off the request's path.
    await vi.waitFor(async () => {
      const [listed] = (await h.call("GET", "/api/keys", { token: user.token })).body;
      expect(Date.parse(listed.last_used_at)).toBeGreaterThan(Date.parse(listed.created_at) - 1000);
    });
  });
});

describe("DELETE /api/keys/{id}", () => {
  it("revokes the key: refused from the next request on", async () => {
    const user = await h.newUser();
    const created = await createKey(user.token, { name: "short-lived", scopes: ["query"] });
    expect((await h.call("GET", "/databases", { token: created.key })).status).toBe(200);

    expect((await h.call("DELETE", `/api/keys/${created.id}`, { token: user.token })).status).toBe(204);
    const refused = await h.call("GET", "/databases", { token: created.key });
    expect(refused.status).toBe(401);
    expect(refused.body.code).toBe("unauthorized");
    expect((await h.call("GET", "/api/keys", { token: user.token })).body).toEqual([]);
    expect((await h.call("DELETE", `/api/keys/${created.id}`, { token: user.token })).status).toBe(404);
  });

  it("answers 404 for another user's key and leaves it working", async () => {
    const owner = await h.newUser();
    const created = await createKey(owner.token, { name: "mine", scopes: ["query"] });
    const other = await h.newUser();
    expect((await h.call("DELETE", `/api/keys/${created.id}`, { token: other.token })).status).toBe(404);
    expect((await h.call("GET", "/databases", { token: created.key })).status).toBe(200);
  });
});

describe("DELETE /api/keys/{id}: what the session store kept for the key", () => {
  /** Replies the next model request gets, in order. */
  const replies: FakeStep[] = [];
  let fake: FakeOpenAI;
  let r: Harness;
  beforeAll(async () => {
    fake = await startQueuedFakeOpenAI(replies);
    r = await createHarness({ store: "postgresql", sessions: "redis", env: { OPENAI_BASE_URL: fake.baseUrl, OPENAI_MODEL: "fake-model" } });
  });
  afterAll(async () => {
    await r?.close();
    await fake?.close();
  });

  const ask = async (token: string, threadId: string) => {
    replies.push({ toolCalls: [{ name: "run_query", args: { sql: "SELECT COUNT(*) AS albums FROM Album" } }] }, { content: "There are 347 albums." });
    const res = await r.call("POST", "/ask", { token, json: { question: "How many albums?", thread_id: threadId } });
    expect(res.status, res.text).toBe(200);
  };

  it("deletes the key's session and its conversations, and leaves its user's", async () => {
    const user = await r.newConnectedUser();
    const connectionId = (await r.call("GET", "/databases", { token: user.token })).body[0].id;
    const created = (await r.call("POST", "/api/keys", { token: user.token, json: { name: "k", scopes: ["ask"], connection_ids: [connectionId] } })).body;
    expect((await r.call("POST", `/databases/connect_db/${connectionId}`, { token: created.key })).status).toBe(200);
    await ask(created.key, "t1");
    await ask(created.key, "t2");
    await ask(user.token, "t1");

    const { raw, prefix } = r.redis!;
    const keys = [`session:key:${created.id}`, `list:key-thread:${user.id}:key:${created.id}:t1`, `list:key-thread:${user.id}:key:${created.id}:t2`].map((name) => `${prefix}${name}`);
    const users = [`session:${user.sessionId}`, `list:thread:${user.id}:t1`].map((name) => `${prefix}${name}`);
    for (const name of [...keys, ...users]) expect(await raw.exists(name), name).toBe(1);

    expect((await r.call("DELETE", `/api/keys/${created.id}`, { token: user.token })).status).toBe(204);
    for (const name of keys) expect(await raw.exists(name), name).toBe(0);
    for (const name of users) expect(await raw.exists(name), name).toBe(1);
  });
});

describe("managing keys with a key", () => {
  it("is refused with 403: a key can neither mint, list nor revoke keys", async () => {
    const user = await h.newUser();
    const created = await createKey(user.token, { name: "everything", scopes: ["query", "ask", "monitoring:read", "monitoring:write"] });
    for (const [method, url, json] of [
      ["POST", "/api/keys", { name: "child", scopes: ["query"] }],
      ["GET", "/api/keys", undefined],
      ["DELETE", `/api/keys/${created.id}`, undefined],
    ] as const) {
      const res = await h.call(method, url, { token: created.key, json });
      expect(res.status, `${method} ${url}`).toBe(403);
      expect(res.body.code).toBe("forbidden");
    }
    expect((await h.call("GET", "/api/keys", { token: user.token })).body).toHaveLength(1);
  });
});
