// Threat: logging in again and again to fill Redis. Each login opens a session, a Redis hash
// that lives as long as its token is used and may hold a schema of 16,000 characters; the
// login limits count only failures. Sessions opened per account are now limited per window.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";

describe.each(["memory", "redis"] as const)("sessions opened per account, %s sessions", (sessions) => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ sessions, env: { LOGIN_MAX_SESSIONS_PER_ACCOUNT: "3" } });
  });
  afterAll(async () => h?.close());

  const login = (email: string, password: string) => h.call("POST", "/login", { form: { username: email, password } });

  it("answers 429 with Retry-After past the limit, for that account only, and the sessions opened go on working", async () => {
    const user = await h.newUser(); // its first session
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await login(user.email, user.password)).status);
    expect(statuses).toEqual([200, 200, 429]);
    const refused = await login(user.email, user.password);
    expect(refused.body).toMatchObject({ code: "rate_limited", detail: expect.stringContaining("Too many sessions opened for this account") });
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
    expect((await h.call("GET", "/users/me", { token: user.token })).status).toBe(200);

    const other = await h.newUser();
    expect((await login(other.email, other.password)).status).toBe(200);
  });

  it("counts logins sent at once", async () => {
    const user = await h.newUser();
    const statuses = (await Promise.all(Array.from({ length: 6 }, () => login(user.email, user.password)))).map((r) => r.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(2);
  });
});
