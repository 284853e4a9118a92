// Graceful shutdown of a real server: in-flight requests finish, new connections are refused,
// kept-alive ones take no more work and close once idle, then the stores are closed.

import { once } from "node:events";
import { connect } from "node:net";

import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { startService, type RunningService } from "../../src/serve.js";
import { createHarness, type Harness } from "../support/harness.js";

describe("graceful shutdown", () => {
  let h: Harness;
  let service: RunningService;
  // Each test stops its own server.
  beforeEach(async () => {
    // Slow hashing makes registration a request that is still running when shutdown starts.
    h = await createHarness({ env: { PORT: "0", HOST: "127.0.0.1", BCRYPT_ROUNDS: "13" } });
    service = await startService(h.deps);
  });
  afterEach(async () => h?.close());

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

  it("answers a request arriving on a kept-alive socket with Connection: close, and closes the socket once done", async () => {
    const socket = connect(service.port, "127.0.0.1");
    await once(socket, "connect");
    let received = "";
    const closed = once(socket, "close");
    const body = JSON.stringify({ name: "Late", email: `late-${Date.now()}@example.com`, password: "long enough pw" });
    socket.write(`POST /users/ HTTP/1.1\r\nhost: pulse\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    await new Promise((r) => setTimeout(r, 250));
    const stopped = service.stop();
    socket.on("data", (chunk: Buffer) => {
      // The next request, sent as soon as the first is answered, as a pooling client would.
      if (received === "") socket.write("GET /health HTTP/1.1\r\nhost: pulse\r\n\r\n");
      received += chunk.toString("latin1");
    });
    await closed;
    const statuses = [...received.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1]);
    expect(statuses).toEqual(["201", "200"]);
    expect(received.split("HTTP/1.1 200")[1]).toMatch(/^connection: close\r$/im);
    // Without waiting out the kept-alive socket's timeout (5 s).
    const stopping = Date.now();
    await stopped;
    expect(Date.now() - stopping).toBeLessThan(4_000);
  });
});
