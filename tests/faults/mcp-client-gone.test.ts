// An MCP client that hangs up while its tool runs: the tool is cancelled, as POST /ask is when
// its client goes, instead of going on calling the model until ASK_TIMEOUT_MS.

import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

import { startFakeOpenAI, type FakeOpenAI } from "../support/fake-openai.js";
import { createHarness, type Harness } from "../support/harness.js";
import { sqliteTarget } from "../support/targets.js";

describe("an MCP client that hangs up during ask", () => {
  let fake: FakeOpenAI;
  let h: Harness;
  let base: string;
  beforeAll(async () => {
    fake = await startFakeOpenAI([{ fail: "hang" }]);
    // Far longer than the test waits: only the client's hang-up can end the model's request.
    h = await createHarness({ env: { OPENAI_BASE_URL: fake.baseUrl, OPENAI_MODEL: "fake-model", OPENAI_TIMEOUT_MS: "60000", ASK_TIMEOUT_MS: "120000" } });
    base = (await h.serve()).url;
  });
  afterAll(async () => {
    await h?.close();
    await fake?.close();
  });

  it("cancels the tool: the model's request is dropped", async () => {
    const user = await h.newUser();
    const created = await h.call("POST", "/databases/add_db_connection", { token: user.token, json: (await sqliteTarget(h.sqliteRoot)).body });
    const connectionId = created.body.db_connection.id as number;
    const client = new AbortController();
    const asked = fetch(`${base}/mcp`, {
      method: "POST",
      headers: { authorization: `Bearer ${user.token}`, "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: "ask", arguments: { connection_id: connectionId, question: "How many rows?" } } }),
      signal: client.signal,
    });
    await vi.waitFor(() => expect(fake.requests).toHaveLength(1), { timeout: 10_000, interval: 20 });
    client.abort();
    await expect(asked).rejects.toThrow();
    await vi.waitFor(() => expect(fake.hungUp).toBe(1), { timeout: 10_000, interval: 50 });
    // The server goes on answering.
    expect((await fetch(`${base}/health`)).status).toBe(200);
  }, 30_000);
});
