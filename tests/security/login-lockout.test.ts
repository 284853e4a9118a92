// Threat: guessing passwords, and locking the owner out by failing on purpose. Failures lock an
// account per client address, so an attacker elsewhere cannot lock the owner out; a higher
// ceiling across addresses stops guesses spread over many, and spares addresses the account
// has logged in from. Each harness request names its client with X-Forwarded-For.

import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";
import { uniqueName } from "../support/services.js";

describe.each(["memory", "redis"] as const)("POST /login with %s sessions", (sessions) => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({
      sessions,
      env: {
        LOGIN_MAX_ATTEMPTS_PER_ACCOUNT: "3",
        LOGIN_MAX_ATTEMPTS_PER_ACCOUNT_ALL_CLIENTS: "6",
        LOGIN_MAX_ATTEMPTS_PER_CLIENT: "8",
        TRUST_PROXY: "true",
      },
    });
  });
  afterAll(async () => h?.close());

  let nextAddress = 1;
  /** A client address no other test uses. */
  const newAddress = () => `198.18.${Math.floor(nextAddress / 250)}.${(nextAddress++ % 250) + 1}`;

  const login = (email: string, password: string, address: string) =>
    h.call("POST", "/login", { form: { username: email, password }, headers: { "x-forwarded-for": address } });

  it("locks an account for the client that keeps failing, with Retry-After, even for the right password", async () => {
    const user = await h.newUser();
    const attacker = newAddress();
    for (let i = 0; i < 3; i++) expect((await login(user.email, "wrong-password", attacker)).status).toBe(401);
    const res = await login(user.email, user.password, attacker);
    expect(res.status).toBe(429);
    expect(res.body.code).toBe("rate_limited");
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
  });

  it("counts guesses sent at once: no more than the limit are checked", async () => {
    const user = await h.newUser();
    const attacker = newAddress();
    const statuses = (await Promise.all(Array.from({ length: 12 }, (_, i) => login(user.email, `wrong-${i}`, attacker)))).map((r) => r.status);
    expect(statuses.filter((s) => s === 401)).toHaveLength(3);
    expect(statuses.filter((s) => s === 429)).toHaveLength(9);
  });

  it("does not count logins with the right password against the limit", async () => {
    const user = await h.newUser();
    const home = newAddress();
    for (let i = 0; i < 5; i++) expect((await login(user.email, user.password, home)).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await login(user.email, "wrong-password", home)).status).toBe(401);
    expect((await login(user.email, user.password, home)).status).toBe(200);
  });

  it("lets the owner in from their own address while an attacker elsewhere is locked out", async () => {
    const user = await h.newUser();
    const attacker = newAddress();
    for (let i = 0; i < 5; i++) await login(user.email, "wrong-password", attacker);
    expect((await login(user.email, "wrong-password", attacker)).status).toBe(429);
    expect((await login(user.email, user.password, newAddress())).status).toBe(200);
  });

  it("stops guesses spread over many addresses, but not from an address the account logged in from", async () => {
    const user = await h.newUser();
    const home = newAddress();
    expect((await login(user.email, user.password, home)).status).toBe(200);
    // Six failures, two from each of three addresses: under each address's limit, at the ceiling.
    for (let i = 0; i < 3; i++) {
      const address = newAddress();
      for (let j = 0; j < 2; j++) expect((await login(user.email, "wrong-password", address)).status).toBe(401);
    }
    const stranger = await login(user.email, user.password, newAddress());
    expect(stranger.status).toBe(429);
    expect(stranger.body.detail).toMatch(/failed login attempts for this account/);
    expect((await login(user.email, user.password, home)).status).toBe(200);
  });

  it("counts every address of an IPv6 /64 as one client: rotating through them gains nothing", async () => {
    const user = await h.newUser();
    const prefix = `2001:db8:${(nextAddress++).toString(16)}:${sessions === "redis" ? "1" : "2"}`;
    for (let i = 1; i <= 3; i++) expect((await login(user.email, "wrong-password", `${prefix}::${i}`)).status).toBe(401);
    // A fourth address of the same /64 is the same client, locked out; the owner on another
    // /64 is not.
    expect((await login(user.email, user.password, `${prefix}:ffff:ffff:ffff:4`)).status).toBe(429);
    expect((await login(user.email, user.password, `2001:db8:ffff:${(nextAddress++).toString(16)}::1`)).status).toBe(200);
  });

  it("limits attempts per client across accounts, by the address the proxy appended, whatever the client wrote before it", async () => {
    const statuses: number[] = [];
    const address = newAddress();
    for (let i = 0; i < 10; i++) {
      const res = await h.call("POST", "/login", {
        form: { username: `${uniqueName("x")}@example.com`, password: "whatever123" },
        headers: { "x-forwarded-for": `${newAddress()}, ${address}` },
      });
      statuses.push(res.status);
    }
    expect(statuses).toContain(429);
    expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(8);
  });
});

describe("POST /login while the metadata store cannot answer", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ env: { LOGIN_MAX_ATTEMPTS_PER_ACCOUNT: "2", STORE_QUERY_TIMEOUT_MS: "300" } });
  });
  afterAll(async () => h?.close());

  it("answers 503 and counts no failure: the owner gets in once it answers again", async () => {
    const user = await h.newUser();
    const locker = new pg.Client({ connectionString: h.pgDatabase!.url });
    await locker.connect();
    try {
      await locker.query("BEGIN");
      await locker.query("LOCK TABLE users IN ACCESS EXCLUSIVE MODE");
      for (let i = 0; i < 3; i++) {
        const res = await h.call("POST", "/login", { form: { username: user.email, password: user.password } });
        expect(res.status).toBe(503);
      }
      await locker.query("ROLLBACK");
    } finally {
      await locker.end();
    }
    expect((await h.call("POST", "/login", { form: { username: user.email, password: user.password } })).status).toBe(200);
  });
});

describe("POST /login behind two proxies (TRUST_PROXY=2)", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ env: { LOGIN_MAX_ATTEMPTS_PER_CLIENT: "3", TRUST_PROXY: "2" } });
  });
  afterAll(async () => h?.close());

  it("limits the client by the address the outer proxy appended, not the inner proxy's nor what the client wrote", async () => {
    const attempt = (forwarded: string) =>
      h.call("POST", "/login", { form: { username: `${uniqueName("x")}@example.com`, password: "whatever123" }, headers: { "x-forwarded-for": forwarded } });
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await attempt(`198.18.9.${i}, 203.0.113.77, 10.0.0.9`)).status);
    expect(statuses).toEqual([401, 401, 401, 429]);
    // Another client behind the same inner proxy is not limited.
    expect((await attempt("203.0.113.78, 10.0.0.9")).status).toBe(401);
  });
});
