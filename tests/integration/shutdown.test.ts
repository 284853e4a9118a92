// Graceful shutdown of a real server: in-flight requests finish, new connections are refused,
// then the stores are closed.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { startService, type RunningService } from "../../src/lifecycle.js";
import { createHarness, type Harness } from "../support/harness.js";

describe("graceful shutdown", () => {
  let h: Harness;
  let service: RunningService;
  beforeAll(async () => {
    // Slow hashing makes registration a request that is still running when shutdown starts.
    h = await createHarness({ env: { PORT: "0", HOST: "127.0.0.1", BCRYPT_ROUNDS: "13" } });
    service = await startService(h.deps);
  });
  afterAll(async () => h?.close());

  it("finishes in-flight requests, refuses new ones, then closes the stores", async () => {
    const base = `http://127.0.0.1:${service.port}`;
    expect((await fetch(`${base}/health`)).status).toBe(200);

    const inFlight = fetch(`${base}/users/`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "Late", email: `late-${Date.now()}@example.com`, password: "long enough pw" }),
    });
    // Time to arrive on a loaded machine (other test files run beside this one); the hash takes longer.
    await new Promise((r) => setTimeout(r, 250));
    const stopped = service.stop();

    const res = await inFlight;
    expect(res.status).toBe(201);
    await stopped;

    await expect(fetch(`${base}/health`)).rejects.toThrow();
    await expect(h.deps.store.ping()).rejects.toThrow();
  });
});
