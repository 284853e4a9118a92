// Threat: a flood of made-up API keys. A key no cache knows costs a read of the metadata store,
// so each client's unknown keys are counted, and past the limit its keys are refused with 429
// before the store is read, on every instance (the count is in Redis).

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { newKeySecret } from "../../src/auth/api-keys.js";
import { createHarness, type Harness } from "../support/harness.js";

describe("unknown API keys per client", () => {
  let a: Harness;
  let b: Harness;
  beforeAll(async () => {
    const env = { API_KEY_MAX_UNKNOWN_PER_CLIENT: "3", TRUST_PROXY: "true" };
    a = await createHarness({ sessions: "redis", env });
    b = await createHarness({ shareWith: a, env });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  const withKey = (h: Harness, key: string, address: string) =>
    h.call("GET", "/databases", { headers: { authorization: `Bearer ${key}`, "x-forwarded-for": address } });

  it("answers 401 for each unknown key up to the limit, then 429 with Retry-After on every instance", async () => {
    const client = "203.0.113.40";
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await withKey(i % 2 ? b : a, newKeySecret().secret, client)).status);
    expect(statuses).toEqual([401, 401, 401]);
    for (const h of [a, b]) {
      const refused = await withKey(h, newKeySecret().secret, client);
      expect(refused.status).toBe(429);
      expect(refused.body).toMatchObject({ code: "rate_limited", detail: expect.stringContaining("unknown API keys from this client") });
      expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
    }
  });

  it("counts unknown keys sent at once: no more than the limit reach the store", async () => {
    const client = "203.0.113.43";
    const statuses = (await Promise.all(Array.from({ length: 12 }, (_, i) => withKey(i % 2 ? b : a, newKeySecret().secret, client)))).map((r) => r.status);
    expect(statuses.filter((s) => s === 401)).toHaveLength(3);
    expect(statuses.filter((s) => s === 429)).toHaveLength(9);
  });

  it("does not count a key it already refused, nor limit another client or a key already verified", async () => {
    const user = await a.newUser();
    const created = await a.call("POST", "/api/keys", { token: user.token, json: { name: "k", scopes: ["query"] } });
    expect(created.status).toBe(201);
    const good = created.body.key as string;
    const client = "203.0.113.41";
    expect((await withKey(a, good, client)).status).toBe(200);

    const same = newKeySecret().secret;
    for (let i = 0; i < 5; i++) expect((await withKey(a, same, client)).status).toBe(401);
    for (let i = 0; i < 2; i++) expect((await withKey(a, newKeySecret().secret, client)).status).toBe(401);
    expect((await withKey(a, newKeySecret().secret, client)).status).toBe(429);

    expect((await withKey(a, good, client)).status, "verified before the limit: from the cache").toBe(200);
    expect((await withKey(a, newKeySecret().secret, "203.0.113.42")).status, "another client").toBe(401);
  });
});
