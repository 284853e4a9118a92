// Threat: a token that outlives what it stood for. Logging out, changing one's password and
// deleting one's account revoke tokens for good: in the metadata store (a Redis without its
// data brings none back), at once on the instance that revoked, through Redis on the others,
// within TOKEN_RECHECK_SECONDS on an instance that missed the message, and at once on one that
// knows it could not hear (its Redis connection down).

import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

import { changePassword, deleteAccount } from "../../src/services/accounts.js";
import { createHarness, type Harness } from "../support/harness.js";
import { startTcpRelay, type TcpRelay } from "../support/tcp-relay.js";

type User = Awaited<ReturnType<Harness["newConnectedUser"]>>;

const SQL = { sql: "SELECT 1 AS one" };

/** The connection the user's session is connected to. */
async function connectedDb(h: Harness, user: User): Promise<number> {
  return (await h.call("GET", "/databases/session-status", { token: user.token })).body.db_id as number;
}

/** A second token of the same user: another session. */
async function loginAgain(h: Harness, user: { email: string; password: string }): Promise<string> {
  const res = await h.call("POST", "/login", { form: { username: user.email, password: user.password } });
  expect(res.status).toBe(200);
  return res.body.access_token as string;
}

async function expectRefused(h: Harness, token: string, connectionId: number) {
  for (const [method, url, json] of [
    ["GET", "/users/me", undefined],
    ["POST", "/query", SQL],
    ["POST", `/databases/${connectionId}/query`, SQL],
  ] as const) {
    const res = await h.call(method, url, { token, json });
    expect(res.status, `${method} ${url}`).toBe(401);
    expect(res.body.code).toBe("unauthorized");
  }
}

async function expectAdmitted(h: Harness, token: string) {
  expect((await h.call("GET", "/users/me", { token })).status).toBe(200);
}

/** Waits for something another instance is told through Redis: delivered asynchronously, so
 * "at once" is "within seconds" (one on a quiet machine; five leave room for a loaded one), far
 * below the recheck age these instances use. */
const soon = (check: () => Promise<void> | void) => vi.waitFor(check, { timeout: 5000, interval: 20 });

describe("on one instance", () => {
  let h: Harness;
  beforeAll(async () => {
    // A long recheck age: only the revocation itself can make these tests pass.
    h = await createHarness({ sessions: "redis", env: { TOKEN_RECHECK_SECONDS: "3600", LOGIN_MAX_ATTEMPTS_PER_ACCOUNT: "3" } });
  });
  afterAll(async () => {
    await h?.close();
  });

  describe("POST /logout", () => {
    it("refuses the same token afterwards everywhere, and leaves the user's other sessions alone", async () => {
      const user = await h.newConnectedUser();
      const db = await connectedDb(h, user);
      const other = await loginAgain(h, user);
      expect((await h.call("POST", "/query", { token: user.token, json: SQL })).status).toBe(200);

      const res = await h.call("POST", "/logout", { token: user.token });
      expect(res.status).toBe(204);
      await expectRefused(h, user.token, db);
      expect((await h.call("POST", "/logout", { token: user.token })).status).toBe(401);
      await expectAdmitted(h, other);
    });

    it("keeps the token refused by an instance with empty caches and a Redis without the news", async () => {
      const user = await h.newConnectedUser();
      const db = await connectedDb(h, user);
      expect((await h.call("POST", "/logout", { token: user.token })).status).toBe(204);
      // Shares only the metadata store: what a restart of Redis and of every instance leaves.
      const fresh = await createHarness({ shareWith: h, sessions: "memory" });
      try {
        await expectRefused(fresh, user.token, db);
      } finally {
        await fresh.close();
      }
    });
  });

  describe("PUT /users/me/password", () => {
    it("revokes every token of the user and answers a new one that works", async () => {
      const user = await h.newConnectedUser();
      const db = await connectedDb(h, user);
      const other = await loginAgain(h, user);

      const res = await h.call("PUT", "/users/me/password", {
        token: user.token,
        json: { current_password: user.password, new_password: "a brand new passphrase" },
      });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ token_type: "bearer", expires_in: expect.any(Number) });
      expect(res.body.session_id).not.toBe(user.sessionId);

      await expectRefused(h, user.token, db);
      await expectRefused(h, other, db);
      const fresh = res.body.access_token as string;
      await expectAdmitted(h, fresh);
      expect((await h.call("POST", `/databases/${db}/query`, { token: fresh, json: SQL })).status).toBe(200);
      expect((await h.call("POST", "/login", { form: { username: user.email, password: user.password } })).status).toBe(401);
      await loginAgain(h, { email: user.email, password: "a brand new passphrase" });
    });

    it("answers 409, not 403, to a confirmation checked after another request changed the password", async () => {
      // The interleaving that two requests at once may take: both admitted with the same token,
      // the second reads the user only once the first has changed the password.
      const user = await h.newUser();
      const auth = { kind: "login" as const, userId: user.id, sessionId: user.sessionId, generation: 0, expiresAt: Date.now() + 60_000 };
      await changePassword(h.deps, auth, { currentPassword: user.password, newPassword: "first new passphrase" });
      for (const late of [
        () => changePassword(h.deps, auth, { currentPassword: user.password, newPassword: "second new passphrase" }),
        () => deleteAccount(h.deps, auth, user.password),
      ]) {
        await expect(late()).rejects.toMatchObject({ code: "conflict", extra: { errors: [{ message: "is no longer current" }] } });
      }
    });

    it("lets one of two changes at once through, and answers the other 409: its current password no longer was", async () => {
      const user = await h.newUser();
      const change = (next: string) => h.call("PUT", "/users/me/password", { token: user.token, json: { current_password: user.password, new_password: next } });
      const answers = await Promise.all([change("first new passphrase"), change("second new passphrase")]);
      expect(answers.map((r) => r.status).sort()).toEqual([200, 409]);
      const won = answers[0]!.status === 200 ? "first new passphrase" : "second new passphrase";
      expect(answers.find((r) => r.status === 409)!.body.errors).toEqual([{ path: "body.current_password", message: "is no longer current" }]);
      // The password is the one the answered 200 says, and its token works.
      await expectAdmitted(h, answers.find((r) => r.status === 200)!.body.access_token as string);
      await loginAgain(h, { email: user.email, password: won });
    });

    it("answers 403 for a wrong current password and changes nothing", async () => {
      const user = await h.newUser();
      const res = await h.call("PUT", "/users/me/password", {
        token: user.token,
        json: { current_password: "not the password", new_password: "a brand new passphrase" },
      });
      expect(res.status).toBe(403);
      expect(res.body.errors).toEqual([{ path: "body.current_password", message: "is incorrect" }]);
      await expectAdmitted(h, user.token);
      await loginAgain(h, user);
    });

    it.each([
      ["too short", "short", "at least 8 characters"],
      ["over bcrypt's 72 bytes", "é".repeat(37), "at most 72 bytes"],
    ])("refuses a new password %s with 422, as registration does", async (_, newPassword, message) => {
      const user = await h.newUser();
      const res = await h.call("PUT", "/users/me/password", { token: user.token, json: { current_password: user.password, new_password: newPassword } });
      expect(res.status).toBe(422);
      expect(res.body.errors).toEqual([{ path: "body.new_password", message: expect.stringContaining(message) }]);
      await expectAdmitted(h, user.token);
    });

    it("stops guessing the password with a stolen token after a few tries", async () => {
      const user = await h.newUser();
      const guess = (current: string) =>
        h.call("PUT", "/users/me/password", { token: user.token, json: { current_password: current, new_password: "a brand new passphrase" } });
      for (let i = 0; i < 3; i++) expect((await guess(`wrong guess ${i}`)).status).toBe(403);
      const locked = await guess(user.password);
      expect(locked.status).toBe(429);
      expect(locked.headers.get("retry-after")).toBeTruthy();
    });
  });

  describe("DELETE /users/me", () => {
    it("deletes the user, refuses their tokens and closes their cached connectors", async () => {
      const user = await h.newConnectedUser();
      const db = await connectedDb(h, user);
      const other = await loginAgain(h, user);
      expect((await h.call("POST", `/databases/${db}/query`, { token: other, json: SQL })).status).toBe(200);
      expect(h.deps.connectors.has(db)).toBe(true);

      const res = await h.call("DELETE", "/users/me", { token: user.token, json: { password: user.password } });
      expect(res.status).toBe(204);
      expect(h.deps.connectors.has(db)).toBe(false);
      await expectRefused(h, user.token, db);
      await expectRefused(h, other, db);
      // Nothing reopened the connector for them.
      expect(h.deps.connectors.has(db)).toBe(false);
      expect((await h.call("POST", "/login", { form: { username: user.email, password: user.password } })).status).toBe(401);
    });

    it("answers 403 for a wrong password, and 422 without one, and deletes nothing", async () => {
      const user = await h.newUser();
      const wrong = await h.call("DELETE", "/users/me", { token: user.token, json: { password: "not the password" } });
      expect(wrong.status).toBe(403);
      expect(wrong.body.errors).toEqual([{ path: "body.password", message: "is incorrect" }]);
      expect((await h.call("DELETE", "/users/me", { token: user.token, json: {} })).status).toBe(422);
      await expectAdmitted(h, user.token);
    });
  });
});

describe("across instances", () => {
  let a: Harness;
  let b: Harness;
  beforeAll(async () => {
    // The recheck age is an hour: only the message through Redis can reach B in time.
    a = await createHarness({ sessions: "redis", env: { TOKEN_RECHECK_SECONDS: "3600" } });
    b = await createHarness({ shareWith: a, env: { TOKEN_RECHECK_SECONDS: "3600" } });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  /** A user whose token B has already admitted, so B holds it in its cache. */
  async function userKnownToB() {
    const user = await a.newConnectedUser();
    const db = await connectedDb(a, user);
    expect((await b.call("POST", "/query", { token: user.token, json: SQL })).status).toBe(200);
    expect(b.deps.connectors.has(db)).toBe(true);
    return { user, db };
  }

  it("a logout on A is refused on B at once", async () => {
    const { user, db } = await userKnownToB();
    expect((await a.call("POST", "/logout", { token: user.token })).status).toBe(204);
    await soon(async () => expect((await b.call("GET", "/users/me", { token: user.token })).status).toBe(401));
    await expectRefused(b, user.token, db);
  });

  it("a password change on A revokes the old token on B at once, and B admits the new one", async () => {
    const { user, db } = await userKnownToB();
    const res = await a.call("PUT", "/users/me/password", {
      token: user.token,
      json: { current_password: user.password, new_password: "a brand new passphrase" },
    });
    expect(res.status).toBe(200);
    await soon(async () => expect((await b.call("GET", "/users/me", { token: user.token })).status).toBe(401));
    await expectRefused(b, user.token, db);
    await expectAdmitted(b, res.body.access_token as string);
  });

  it("a deletion on A refuses the token on B at once and closes B's connector", async () => {
    const { user, db } = await userKnownToB();
    expect((await a.call("DELETE", "/users/me", { token: user.token, json: { password: user.password } })).status).toBe(204);
    await soon(() => expect(b.deps.connectors.has(db)).toBe(false));
    await soon(async () => expect((await b.call("GET", "/users/me", { token: user.token })).status).toBe(401));
    await expectRefused(b, user.token, db);
    expect(b.deps.connectors.has(db)).toBe(false);
  });

  it("an instance that missed the message refuses the token within TOKEN_RECHECK_SECONDS", async () => {
    // C shares the metadata store but not Redis: it hears nothing A announces.
    const c = await createHarness({ shareWith: a, sessions: "memory", env: { TOKEN_RECHECK_SECONDS: "1" } });
    try {
      const user = await a.newUser();
      await expectAdmitted(c, user.token);
      expect((await a.call("POST", "/logout", { token: user.token })).status).toBe(204);
      // Still admitted from C's cache: the message was indeed missed...
      await expectAdmitted(c, user.token);
      // ...until the answer is older than the recheck age.
      await vi.waitFor(async () => expect((await c.call("GET", "/users/me", { token: user.token })).status).toBe(401), {
        timeout: 2500,
        interval: 100,
      });
    } finally {
      await c.close();
    }
  });
});

describe("an instance whose Redis connection drops while a revocation is announced", () => {
  let a: Harness;
  let b: Harness;
  let relay: TcpRelay;
  beforeAll(async () => {
    // B reaches Redis through a relay the test can cut; the recheck age is an hour, so only
    // hearing the news, or knowing it could not, keeps B from admitting what A revoked.
    relay = await startTcpRelay({ host: "127.0.0.1", port: 6379 });
    a = await createHarness({ sessions: "redis", env: { TOKEN_RECHECK_SECONDS: "3600" } });
    b = await createHarness({ shareWith: a, env: { TOKEN_RECHECK_SECONDS: "3600", REDIS_URL: `redis://127.0.0.1:${relay.port}` } });
  });
  afterAll(async () => {
    relay?.refuse(false);
    await b?.close();
    await a?.close();
    await relay?.close();
  });

  it("asks the store while it cannot hear, and forgets what it knew once it hears again", async () => {
    const user = await a.newUser();
    const other = await a.newUser();
    const created = await a.call("POST", "/api/keys", { token: user.token, json: { name: "k", scopes: ["query"] } });
    expect(created.status).toBe(201);
    const key = created.body.key as string;
    // B has admitted all three: each is in its caches.
    await expectAdmitted(b, user.token);
    await expectAdmitted(b, other.token);
    expect((await b.call("GET", "/databases", { token: key })).status).toBe(200);
    expect(b.deps.sessions.listening()).toBe(true);

    relay.refuse(true);
    relay.cut();
    await vi.waitFor(() => expect(b.deps.sessions.listening()).toBe(false), { timeout: 5000, interval: 20 });
    // Revoked on A while B is deaf: the announcements never reach B.
    expect((await a.call("DELETE", `/api/keys/${created.body.id}`, { token: user.token })).status).toBe(204);
    expect((await a.call("POST", "/logout", { token: user.token })).status).toBe(204);
    expect((await b.call("GET", "/users/me", { token: user.token })).status).toBe(401);
    expect((await b.call("GET", "/databases", { token: key })).status).toBe(401);
    // What still stands is still admitted, from the store.
    await expectAdmitted(b, other.token);

    relay.refuse(false);
    await vi.waitFor(() => expect(b.deps.sessions.listening()).toBe(true), { timeout: 15_000, interval: 50 });
    expect((await b.call("GET", "/users/me", { token: user.token })).status).toBe(401);
    expect((await b.call("GET", "/databases", { token: key })).status).toBe(401);
    await expectAdmitted(b, other.token);
  }, 30_000);
});
