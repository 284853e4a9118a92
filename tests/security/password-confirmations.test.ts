// Threat: a token's holder sending password confirmations (PUT /users/me/password, DELETE
// /users/me) at once or without end. Only failures were counted, and read before any was
// counted, so requests sent together all reached bcrypt: an unbounded queue of hashes that
// every user's login waited behind, and for right passwords a new session each. Every try now
// counts, before the check; and the hashing queue is bounded, answering 503 past it at once.

import bcrypt from "bcryptjs";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createPasswordHasher } from "../../src/auth/passwords.js";
import { DomainError } from "../../src/errors.js";
import { createHarness, type Harness } from "../support/harness.js";

const TRIES = 4;

let h: Harness;
beforeAll(async () => {
  h = await createHarness({ env: { LOGIN_MAX_ATTEMPTS_PER_ACCOUNT: String(TRIES) } });
});
afterAll(async () => h?.close());

describe("password confirmations", () => {
  it("let no more than the limit reach the password check when sent at once", async () => {
    const user = await h.newUser();
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => h.call("DELETE", "/users/me", { token: user.token, json: { password: "not the password" } })),
    );
    const statuses = answers.map((a) => a.status);
    expect(statuses.filter((s) => s === 403)).toHaveLength(TRIES);
    expect(statuses.filter((s) => s === 429)).toHaveLength(20 - TRIES);
    expect((await h.call("GET", "/users/me", { token: user.token })).status).toBe(200);
  });

  it("count right passwords too: a password changed again and again is stopped at the limit", async () => {
    const user = await h.newUser();
    let token = user.token;
    let password = user.password;
    for (let i = 0; i < TRIES; i++) {
      const next = `new passphrase number ${i}`;
      const res = await h.call("PUT", "/users/me/password", { token, json: { current_password: password, new_password: next } });
      expect(res.status, res.text).toBe(200);
      [token, password] = [res.body.access_token, next];
    }
    const stopped = await h.call("PUT", "/users/me/password", { token, json: { current_password: password, new_password: "one more passphrase" } });
    expect(stopped.status).toBe(429);
    expect(stopped.body.code).toBe("rate_limited");
    expect(stopped.headers.get("retry-after")).toBeTruthy();
  });
});

describe("the password hashing queue", () => {
  const hasher = createPasswordHasher({ threads: 1, rounds: 4, logger: pino({ level: "silent" }) });
  afterAll(() => hasher.close());

  it("answers 'unavailable' at once past its bound instead of queueing without end", async () => {
    const hash = bcrypt.hashSync("right", 4);
    const outcomes = await Promise.all(
      Array.from({ length: 400 }, () =>
        hasher.verify("right", hash).then(
          (ok) => (ok ? "checked" : "wrong"),
          (err: unknown) => (err instanceof DomainError ? err.code : String(err)),
        ),
      ),
    );
    const checked = outcomes.filter((o) => o === "checked").length;
    // One running and 256 waiting were taken; the rest refused.
    expect(checked).toBeGreaterThan(200);
    expect(checked).toBeLessThanOrEqual(257);
    expect(outcomes.filter((o) => o === "unavailable")).toHaveLength(400 - checked);
  });
});

describe("the password hashing queue at a high cost", () => {
  let slow: Harness;
  beforeAll(async () => {
    slow = await createHarness({ env: { BCRYPT_ROUNDS: "12", PASSWORD_HASH_THREADS: "1", LOGIN_MAX_ATTEMPTS_PER_CLIENT: "100000" } });
  });
  afterAll(async () => slow?.close());

  it("refuses logins at once when those queued would take more than a few seconds, and logs no fault", async () => {
    // A sign-up times a hash at this cost (hundreds of milliseconds on one thread).
    await slow.newUser();
    const logins = 200;
    const answers = await Promise.all(
      Array.from({ length: logins }, (_, i) => slow.call("POST", "/login", { form: { username: `nobody-${i}@example.com`, password: "some password" } })),
    );
    const refused = answers.filter((a) => a.status === 503);
    // The queue let in a few seconds of work, far fewer than its former fixed 256 tasks.
    expect(refused.length).toBeGreaterThan(logins / 2);
    expect(answers.filter((a) => a.status !== 503).map((a) => a.status)).toEqual(Array(logins - refused.length).fill(401));
    for (const r of refused) expect(r.body).toEqual({ code: "unavailable", detail: "Too many passwords are being checked right now; try again in a few seconds" });
    expect(slow.logs.filter((line) => JSON.parse(line).level >= 50)).toEqual([]);
  }, 120_000);
});
