// Accounts over HTTP (seed 004): register, login (form and JSON), /users/me and token checks,
// on both backend pairs (embedded and production); what deleting an account removes from Redis.
// Login rate limits: tests/security.

import { SignJWT, UnsecuredJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { startQueuedFakeOpenAI, type FakeOpenAI, type FakeStep } from "../support/fake-openai.js";
import { createHarness, type Harness } from "../support/harness.js";
import { uniqueName } from "../support/services.js";
import { sqliteTarget } from "../support/targets.js";

const backends = [
  { store: "pglite", sessions: "memory" },
  { store: "postgresql", sessions: "redis" },
] as const;

describe.each(backends)("accounts on $store + $sessions", (backend) => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness(backend);
  });
  afterAll(async () => h?.close());

  describe("POST /users/", () => {
    it("registers a user and never returns the password or its hash", async () => {
      const email = `${uniqueName("a")}@Example.com`;
      const res = await h.call("POST", "/users/", { json: { name: "John Doe", email, password: "securepassword" } });
      expect(res.status).toBe(201);
      expect(res.body).toEqual({ id: expect.any(Number), name: "John Doe", email: email.toLowerCase(), created_at: expect.any(String) });
      expect(res.text).not.toContain("securepassword");
      expect(res.text).not.toContain("$2");
    });

    it("answers 409 when the email is taken, whatever its case", async () => {
      const email = `${uniqueName("dup")}@example.com`;
      await h.call("POST", "/users/", { json: { name: "A", email, password: "password-one" } });
      const res = await h.call("POST", "/users/", { json: { name: "B", email: email.toUpperCase(), password: "password-two" } });
      expect(res.status).toBe(409);
      expect(res.body).toEqual({ detail: "A user with this email already exists", code: "conflict" });
    });

    it.each([
      [{ name: "A", email: "not-an-email", password: "longenough" }, "body.email"],
      [{ name: "A", email: "a@example.com", password: "short" }, "body.password"],
      [{ name: "", email: "a@example.com", password: "longenough" }, "body.name"],
      [{ email: "a@example.com", password: "longenough" }, "body.name"],
      // Past RFC 5321's limits, which zod's pattern does not check: no mail reaches these.
      [{ name: "A", email: `${"a".repeat(65)}@example.com`, password: "longenough" }, "body.email"],
      [{ name: "A", email: `a@${"b".repeat(64)}.com`, password: "longenough" }, "body.email"],
      [{ name: "A", email: "a@example-.com", password: "longenough" }, "body.email"],
    ])("rejects %j with 422 naming %s", async (json, path) => {
      const res = await h.call("POST", "/users/", { json });
      expect(res.status).toBe(422);
      expect(res.body.code).toBe("invalid_input");
      expect(res.body.errors.map((e: { path: string }) => e.path)).toContain(path);
    });

    it("takes an address at RFC 5321's limits: a local part of 64 characters, a domain label of 63", async () => {
      const email = `${uniqueName("edge").padEnd(64, "x")}@${"b".repeat(63)}.example.com`;
      const res = await h.call("POST", "/users/", { json: { name: "Edge", email, password: "longenough" } });
      expect(res.status).toBe(201);
      expect(res.body.email).toBe(email.toLowerCase());
    });

    it("answers 400 for malformed JSON", async () => {
      const res = await h.call("POST", "/users/", { body: "{not json", headers: { "content-type": "application/json" } });
      expect(res.status).toBe(400);
      expect(res.body.detail).toMatch(/JSON/);
    });
  });

  describe("POST /login", () => {
    it("logs in with the OAuth2 password form and opens a session record", async () => {
      const user = await h.newUser();
      const res = await h.call("POST", "/login", { form: { username: user.email, password: user.password } });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ token_type: "bearer", access_token: expect.stringMatching(/^ey/) });
      const session = await h.deps.sessions.get(res.body.session_id);
      expect(session).toMatchObject({ user_id: user.id, status: "idle" });
      expect(session!.created_at).toBeGreaterThan(Date.now() / 1000 - 60);
    });

    it("accepts a JSON body too", async () => {
      const user = await h.newUser();
      const res = await h.call("POST", "/login", { json: { username: user.email, password: user.password } });
      expect(res.status).toBe(200);
    });

    it.each([
      ["a wrong password", (u: { email: string }) => ({ username: u.email, password: "wrong password!" })],
      ["an unknown email", () => ({ username: `${uniqueName("nobody")}@example.com`, password: "whatever123" })],
    ])("answers 401 for %s without saying which part was wrong", async (_, creds) => {
      const user = await h.newUser();
      const res = await h.call("POST", "/login", { form: creds(user) });
      expect(res.status).toBe(401);
      expect(res.body).toEqual({ detail: "Incorrect email or password", code: "unauthorized" });
    });

    it("answers 422 for a form without a password, and for no body", async () => {
      const missing = await h.call("POST", "/login", { form: { username: "a@example.com" } });
      expect(missing.status).toBe(422);
      expect(missing.body.errors[0].path).toBe("body.password");
      const empty = await h.call("POST", "/login");
      expect(empty.status).toBe(422);
    });

    it("answers 415 for a body of another media type", async () => {
      const res = await h.call("POST", "/login", { body: "x", headers: { "content-type": "text/plain" } });
      expect(res.status).toBe(415);
      expect(res.body.code).toBe("unsupported_media_type");
      // Both the media types login takes are named.
      expect(res.body.detail).toMatch(/application\/json.*application\/x-www-form-urlencoded/);
    });
  });

  describe("GET /users/me", () => {
    it("returns the authenticated user", async () => {
      const user = await h.newUser();
      const res = await h.call("GET", "/users/me", { token: user.token });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ id: user.id, email: user.email });
    });

    it("renews the session TTL on each authenticated call", async () => {
      const user = await h.newUser();
      await h.deps.sessions.touch(user.sessionId, user.id, 5);
      await h.call("GET", "/users/me", { token: user.token });
      await new Promise((r) => setTimeout(r, 50));
      if (h.redis) {
        const ttl = await h.redis.raw.ttl(`${h.redis.prefix}session:${user.sessionId}`);
        expect(ttl).toBeGreaterThan(3600);
      } else {
        expect(await h.deps.sessions.get(user.sessionId)).not.toBeNull();
      }
    });

    const forged: [string, (h: Harness, userId: number, sid: string) => Promise<string>][] = [
      ["no token", async () => ""],
      ["an expired token", (h, sub, sid) =>
        new SignJWT({ sid }).setProtectedHeader({ alg: "HS256" }).setSubject(String(sub)).setIssuedAt(Math.floor(Date.now() / 1000) - 7200).setExpirationTime(Math.floor(Date.now() / 1000) - 3600).sign(h.config.jwtSecret)],
      ["a token with a tampered payload", async (h, sub, sid) => {
        const good = await new SignJWT({ sid }).setProtectedHeader({ alg: "HS256" }).setSubject(String(sub)).setExpirationTime("1h").sign(h.config.jwtSecret);
        const [head, , sig] = good.split(".");
        const payload = Buffer.from(JSON.stringify({ sid, sub: String(sub + 1), exp: Math.floor(Date.now() / 1000) + 3600 })).toString("base64url");
        return `${head}.${payload}.${sig}`;
      }],
      ["an alg:none token", async (_h, sub, sid) => new UnsecuredJWT({ sid }).setSubject(String(sub)).setExpirationTime("1h").encode()],
      ["a token signed with another secret", (_h, sub, sid) =>
        new SignJWT({ sid }).setProtectedHeader({ alg: "HS256" }).setSubject(String(sub)).setExpirationTime("1h").sign(new TextEncoder().encode("x".repeat(40)))],
      ["garbage", async () => "not.a.jwt"],
    ];
    it.each(forged)("answers 401 for %s", async (_, makeToken) => {
      const user = await h.newUser();
      const token = await makeToken(h, user.id, user.sessionId);
      const res = await h.call("GET", "/users/me", token ? { token } : {});
      expect(res.status).toBe(401);
      expect(res.body.code).toBe("unauthorized");
      expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
    });

    it("says what is wrong with an Authorization header that gives no token", async () => {
      const user = await h.newUser();
      const detailFor = async (headers: Headers | Record<string, string>) => ((await (await h.app.request("/users/me", { headers })).json()) as { detail: string }).detail;
      expect(await detailFor({})).toMatch(/^Missing bearer token/);
      // Two headers reach the app joined into one, as web Headers join them.
      const twice = new Headers([["authorization", `Bearer ${user.token}`], ["authorization", `Bearer ${user.token}`]]);
      expect(await detailFor(twice)).toMatch(/^More than one Authorization header/);
      expect(await detailFor({ authorization: `Basic ${Buffer.from("a:b").toString("base64")}` })).toMatch(/^The Authorization header is not a bearer token/);
    });
  });
});

describe("DELETE /users/me: what the session store kept for the user", () => {
  /** Replies the next model request gets, in order. */
  const replies: FakeStep[] = [];
  let fake: FakeOpenAI;
  let h: Harness;
  beforeAll(async () => {
    fake = await startQueuedFakeOpenAI(replies);
    h = await createHarness({
      store: "postgresql",
      sessions: "redis",
      env: {
        OPENAI_BASE_URL: fake.baseUrl,
        OPENAI_MODEL: "fake-model",
        TRUST_PROXY: "true",
        LOGIN_MAX_ATTEMPTS_PER_ACCOUNT: "3",
        LOGIN_MAX_ATTEMPTS_PER_ACCOUNT_ALL_CLIENTS: "6",
      },
    });
  });
  afterAll(async () => {
    await h?.close();
    await fake?.close();
  });

  const COUNT_SQL = "SELECT COUNT(*) AS albums FROM Album";
  const ask = async (token: string, threadId: string) => {
    replies.push({ toolCalls: [{ name: "run_query", args: { sql: COUNT_SQL } }] }, { content: "There are 347 albums." });
    const res = await h.call("POST", "/ask", { token, json: { question: "How many albums?", thread_id: threadId } });
    expect(res.status, res.text).toBe(200);
  };
  const login = async (email: string, password: string, address = "192.0.2.1") =>
    h.call("POST", "/login", { form: { username: email, password }, headers: { "x-forwarded-for": address } });
  const deleteAccount = (user: { token: string; password: string }) => h.call("DELETE", "/users/me", { token: user.token, json: { password: user.password } });

  it("deletes every session (API keys' too) with its cached schema, the conversations, and what login knew of the email", async () => {
    const user = await h.newUser();
    const second = (await login(user.email, user.password)).body as { access_token: string; session_id: string };
    const connectionId = (await h.call("POST", "/databases/add_db_connection", { token: user.token, json: (await sqliteTarget(h.sqliteRoot)).body })).body.db_connection.id;
    const key = (await h.call("POST", "/api/keys", { token: user.token, json: { name: "k", scopes: ["ask"], connection_ids: [connectionId] } })).body;
    for (const token of [user.token, second.access_token, key.key]) {
      expect((await h.call("POST", `/databases/connect_db/${connectionId}`, { token })).status).toBe(200);
    }
    await ask(user.token, "t1");
    await ask(key.key, "t1");

    const { raw, prefix } = h.redis!;
    const kept = [
      `session:${user.sessionId}`,
      `session:${second.session_id}`,
      `session:key:${key.id}`,
      `list:thread:${user.id}:t1`,
      `list:key-thread:${user.id}:key:${key.id}:t1`,
      `list:login:known-clients:${user.email}`,
      `ratelimit:login:account:${user.email}`,
    ].map((name) => `${prefix}${name}`);
    for (const name of kept) expect(await raw.exists(name), name).toBe(1);
    expect(await raw.hget(`${prefix}session:${second.session_id}`, "db_schema")).toContain("Album");

    expect((await deleteAccount(user)).status).toBe(204);
    // The index of what they owned goes too.
    for (const name of [...kept, `${prefix}owned:${user.id}`]) expect(await raw.exists(name), name).toBe(0);
  });

  it("gives a new account with the same email none of the old one's known clients", async () => {
    const user = await h.newUser();
    const home = "192.0.2.10";
    expect((await login(user.email, user.password, home)).status).toBe(200);
    expect((await deleteAccount(user)).status).toBe(204);
    expect((await h.call("POST", "/users/", { json: { name: "Someone else", email: user.email, password: "another password" } })).status).toBe(201);
    // Six failures, two from each of three addresses: the ceiling across clients, which spares
    // only the addresses this account (not the deleted one) logged in from.
    for (const address of ["192.0.2.11", "192.0.2.12", "192.0.2.13"]) {
      for (let i = 0; i < 2; i++) expect((await login(user.email, "wrong-password", address)).status).toBe(401);
    }
    expect((await login(user.email, "another password", home)).status).toBe(429);
  });
});
