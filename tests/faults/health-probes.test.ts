// /health needs no credentials, so anyone can send a flood of it: its pings of the metadata
// store (and Redis) must not take the store's sessions from real requests. One ping is in flight
// at a time, shared by every probe arriving meanwhile, and its answer is reused for a second.

import { describe, expect, it } from "vitest";

import { createHarness } from "../support/harness.js";
import { PG } from "../support/services.js";
import { startTcpRelay } from "../support/tcp-relay.js";

const PROBES = 200;

describe("a flood of /health against a slow metadata store", () => {
  it("pings the store once for all of it, and authenticated requests meanwhile are answered", async () => {
    const relay = await startTcpRelay({ host: PG.host, port: PG.port });
    const h = await createHarness({ storePort: relay.port });
    try {
      const user = await h.newUser();
      // The store's ping, as it reaches the store (a statement's text ends with a NUL).
      const pings = relay.countSent("SELECT 1\u0000");
      // Every round trip to the store now costs 300 ms: ten sessions answer ~33 statements a second.
      relay.delay(300);
      const probes = Promise.all(Array.from({ length: PROBES }, () => h.call("GET", "/health")));
      const listed = await h.call("GET", "/databases", { token: user.token });
      const answers = await probes;
      expect(pings()).toBeLessThanOrEqual(2);
      expect(answers.map((a) => a.body.store)).toEqual(Array(PROBES).fill("healthy"));
      expect(listed.status).toBe(200);
    } finally {
      await h.close();
      await relay.close();
    }
  }, 60_000);
});
