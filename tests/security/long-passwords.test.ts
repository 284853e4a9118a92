// Threat: bcrypt reads only a password's first 72 bytes, so a longer one would match any password
// with the same start. Passwords over 72 bytes are refused at sign-up and at login alike.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";
import { uniqueName } from "../support/services.js";

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(async () => h?.close());

describe("POST /users/", () => {
  it("refuses a password over 72 bytes, counting bytes rather than characters", async () => {
    for (const password of ["x".repeat(73), "é".repeat(37)]) {
      const res = await h.call("POST", "/users/", { json: { name: "A", email: `${uniqueName("long")}@example.com`, password } });
      expect(res.status).toBe(422);
      expect(res.body.errors).toEqual([{ path: "body.password", message: "must be at most 72 bytes" }]);
    }
  });
});

describe("POST /login", () => {
  it("refuses a password over 72 bytes instead of logging in with its first 72", async () => {
    const user = await h.newUser("p".repeat(72));
    for (const body of [{ form: { username: user.email, password: user.password + "anything" } }, { json: { username: user.email, password: user.password + "x" } }]) {
      const res = await h.call("POST", "/login", body);
      expect(res.status).toBe(422);
      expect(res.body.errors).toEqual([{ path: "body.password", message: "must be at most 72 bytes" }]);
    }
    expect((await h.call("POST", "/login", { json: { username: user.email, password: user.password } })).status).toBe(200);
  });
});
