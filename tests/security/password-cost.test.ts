// Login must not reveal which emails are registered by how long it takes: an unknown email is
// checked against a hash at the configured cost (BCRYPT_ROUNDS), and accounts hashed at another
// cost (BCRYPT_ROUNDS changed since) are hashed again at the configured one once they log in.

import bcrypt from "bcryptjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";
import { uniqueName } from "../support/services.js";

describe("the cost of checking a password", () => {
  let before: Harness;
  let after: Harness;
  beforeAll(async () => {
    before = await createHarness({ env: { BCRYPT_ROUNDS: "4" } });
    // The same deployment restarted with a higher cost.
    after = await createHarness({ shareWith: before, env: { BCRYPT_ROUNDS: "6" } });
  });
  afterAll(async () => {
    await after?.close();
    await before?.close();
  });

  const storedHash = async (email: string) => (await before.pgDatabase!.query<{ password_hash: string }>("SELECT password_hash FROM users WHERE email = $1", [email]))[0]!.password_hash;

  it("checks an unknown email against a hash at the configured cost", async () => {
    const res = await after.call("POST", "/login", { form: { username: `${uniqueName("nobody")}@example.com`, password: "some password" } });
    expect(res.status).toBe(401);
    expect(bcrypt.getRounds(await after.deps.passwords.standInHash())).toBe(6);
    expect(bcrypt.getRounds(await before.deps.passwords.standInHash())).toBe(4);
  });

  it("hashes a password again at the configured cost once it is proven, keeping the tokens issued", async () => {
    const user = await before.newUser();
    expect(bcrypt.getRounds(await storedHash(user.email))).toBe(4);
    const login = await after.call("POST", "/login", { form: { username: user.email, password: user.password } });
    expect(login.status).toBe(200);
    expect(bcrypt.getRounds(await storedHash(user.email))).toBe(6);
    expect((await after.call("GET", "/users/me", { token: user.token })).status).toBe(200);
    expect((await after.call("POST", "/login", { form: { username: user.email, password: user.password } })).status).toBe(200);
  });
});
