// /health needs no credentials, so anyone can send a flood of it: its pings of the metadata
// store (and Redis) must not take the store's sessions from real requests. One ping is in flight
// at a time, shared by every probe arriving meanwhile, and its answer is reused for a second.

import { describe, expect, it } from "vitest";

import { createHarness } from "../support/harness.js";
import { PG, pgAdmin } from "../support/services.js";
import { startTcpRelay } from "../support/tcp-relay.js";

const PROBES = 200;

describe("a flood of /health against a slow metadata store", () => {
  it("pings the store once for all of it, and authenticated requests meanwhile are answered", async () => {
    const relay = await startTcpRelay({ host: PG.host, port: PG.port });
    const h = await createHarness({ storePort: relay.port });
    try {
      const user = await h.newUser();
      // The store's ping, as it reaches the store.
      const pings = relay.countSent("SELECT pg_is_in_recovery()");
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

describe("/health against a metadata store that takes no writes", () => {
  it("says the store is unhealthy (503) while it is read-only, as after a failover to a standby, and healthy again after", async () => {
    const h = await createHarness();
    const store = h.pgDatabase!.name;
    /** The store's sessions start anew, with the database's setting. */
    const reconnect = () => pgAdmin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", PG.database, [store]);
    const health = async () => {
      // The last answer stands for a second.
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      for (let i = 0; ; i++) {
        const res = await h.call("GET", "/health");
        // The first statement on a session the store ended fails once: the pool then reconnects.
        if (res.body.store === "healthy" || i === 3) return res;
        await new Promise((resolve) => setTimeout(resolve, 1_100));
      }
    };
    try {
      expect((await health()).body.store).toBe("healthy");
      await pgAdmin(`ALTER DATABASE ${store} SET default_transaction_read_only = on`);
      await reconnect();
      const readOnly = await health();
      expect(readOnly.status).toBe(503);
      expect(readOnly.body).toMatchObject({ status: "degraded", store: "unhealthy" });
      // Indeed no write goes through meanwhile.
      expect((await h.call("POST", "/users/", { json: { name: "W", email: "ro-store@example.com", password: "correct horse" } })).status).toBe(503);
      await pgAdmin(`ALTER DATABASE ${store} RESET default_transaction_read_only`);
      await reconnect();
      const back = await health();
      expect(back.status).toBe(200);
      expect(back.body.store).toBe("healthy");
    } finally {
      await pgAdmin(`ALTER DATABASE ${store} RESET default_transaction_read_only`);
      await h.close();
    }
  }, 60_000);
});
