// Threat: a flood of sign-ups, each a bcrypt hash and a row (30 in 9 s were accepted). Sign-ups
// are limited per client address and in total.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";
import { uniqueName } from "../support/services.js";

describe("POST /users/ rate limits", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ env: { REGISTER_MAX_PER_CLIENT: "3", REGISTER_MAX_TOTAL: "5", TRUST_PROXY: "true" } });
  });
  afterAll(async () => h?.close());

  const signUp = (address: string) =>
    h.call("POST", "/users/", {
      json: { name: "Flood", email: `${uniqueName("flood")}@example.com`, password: "password123" },
      headers: { "x-forwarded-for": address },
    });

  it("answers 429 with Retry-After past the limit per client, then past the limit in total", async () => {
    const fromOne = [];
    for (let i = 0; i < 4; i++) fromOne.push(await signUp("203.0.113.10"));
    expect(fromOne.map((r) => r.status)).toEqual([201, 201, 201, 429]);
    expect(fromOne[3]!.body).toMatchObject({ code: "rate_limited", detail: expect.stringContaining("sign-ups from this client") });
    expect(Number(fromOne[3]!.headers.get("retry-after"))).toBeGreaterThan(0);

    const fromMany = [];
    for (let i = 0; i < 3; i++) fromMany.push(await signUp(`198.51.100.${i + 1}`));
    expect(fromMany.map((r) => r.status)).toEqual([201, 201, 429]);
    expect(fromMany[2]!.body).toMatchObject({ code: "rate_limited", detail: expect.stringContaining("Too many sign-ups right now") });
    expect(Number(fromMany[2]!.headers.get("retry-after"))).toBeGreaterThan(0);
  });
});
