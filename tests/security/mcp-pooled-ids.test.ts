// MCP servers are pooled across users (src/mcp/route.ts), and clients' JSON-RPC ids repeat: each
// client counts from 0. A call whose client hung up is cancelled, but its tool may still answer
// late, while its server serves another user's request with the same id: that answer must not
// be taken for the other user's. And a call of id 0 (falsy, which the SDK's cancellation skips)
// must be cancelled like any other.

import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

import { startFakeOpenAI, type FakeOpenAI } from "../support/fake-openai.js";
import { createHarness, type Harness } from "../support/harness.js";
import { sqliteTarget } from "../support/targets.js";

describe("MCP calls of the same id on a pooled server", () => {
  let fake: FakeOpenAI;
  let h: Harness;
  let base: string;
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  beforeAll(async () => {
    // The first model request answers only when released, the second never.
    fake = await startFakeOpenAI([async () => (await held, { content: "SECRET OF USER A" }), { fail: "hang" }]);
    h = await createHarness({ env: { OPENAI_BASE_URL: fake.baseUrl, OPENAI_MODEL: "fake-model", OPENAI_TIMEOUT_MS: "60000", ASK_TIMEOUT_MS: "120000" } });
    base = (await h.serve()).url;
  });
  afterAll(async () => {
    release();
    await h?.close();
    await fake?.close();
  });

  const ask = (token: string, connectionId: number, signal?: AbortSignal) =>
    fetch(`${base}/mcp`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 0, method: "tools/call", params: { name: "ask", arguments: { connection_id: connectionId, question: "How many rows?" } } }),
      signal,
    });

  it("cancels a call of id 0 whose client hung up, and never answers another user's call of id 0 with it", async () => {
    const connectionOf = async (token: string) =>
      (await h.call("POST", "/databases/add_db_connection", { token, json: (await sqliteTarget(h.sqliteRoot)).body })).body.db_connection.id as number;
    const a = await h.newUser();
    const b = await h.newUser();
    const [connectionA, connectionB] = [await connectionOf(a.token), await connectionOf(b.token)];

    const client = new AbortController();
    const asked = ask(a.token, connectionA, client.signal);
    await vi.waitFor(() => expect(fake.requests).toHaveLength(1), { timeout: 10_000, interval: 20 });
    client.abort();
    await expect(asked).rejects.toThrow();
    // Cancelled: the model's request is dropped.
    await vi.waitFor(() => expect(fake.hungUp).toBe(1), { timeout: 10_000, interval: 50 });

    // B's call takes the server A's call ran on (the pool's last), and is in flight when A's
    // model request would have answered.
    const bClient = new AbortController();
    const bAsked = ask(b.token, connectionB, bClient.signal);
    await vi.waitFor(() => expect(fake.requests).toHaveLength(2), { timeout: 10_000, interval: 20 });
    release();
    const answered = await Promise.race([bAsked.then((res) => res.text(), () => "(hung up)"), new Promise<string>((resolve) => setTimeout(() => resolve("(still running)"), 1_000))]);
    expect(answered).not.toContain("SECRET OF USER A");
    expect(answered).toBe("(still running)");
    bClient.abort();
    await vi.waitFor(() => expect(fake.hungUp).toBe(2), { timeout: 10_000, interval: 50 });
  }, 30_000);
});
