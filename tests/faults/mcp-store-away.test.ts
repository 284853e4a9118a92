// An MCP tool that finds the metadata store away: the client reads a tool error saying so (not a
// transport failure), and the operator a warning tagged with the request's id, as every route's
// (the caller carries what the tool needs of the request to log it: src/mcp/route.ts).

import { describe, expect, it } from "vitest";

import { createHarness } from "../support/harness.js";
import { PG } from "../support/services.js";
import { startTcpRelay } from "../support/tcp-relay.js";

const MCP_HEADERS = { accept: "application/json, text/event-stream", "content-type": "application/json" };

describe("an MCP tool while the metadata store is away", () => {
  it("answers a tool error, and logs the store's failure with the request's id", async () => {
    const relay = await startTcpRelay({ host: PG.host, port: PG.port });
    const h = await createHarness({ storePort: relay.port, env: { STORE_QUERY_TIMEOUT_MS: "1000" } });
    try {
      const user = await h.newUser();
      const call = (requestId: string) =>
        h.app.request("/mcp", {
          method: "POST",
          headers: { ...MCP_HEADERS, authorization: `Bearer ${user.token}`, "x-request-id": requestId },
          body: JSON.stringify({ jsonrpc: "2.0", id: 3, method: "tools/call", params: { name: "list_connections", arguments: {} } }),
        });
      // Served once with the store there: the token's standing is cached from here on.
      expect((await call("mcp-store-here")).status).toBe(200);
      relay.refuse(true);
      relay.cut();
      const from = h.logs.length;
      const res = await call("mcp-store-away");
      expect(res.status).toBe(200);
      const body = (await res.json()) as { result: { isError?: boolean; structuredContent?: { code?: string } } };
      expect(body.result).toMatchObject({ isError: true, structuredContent: { code: "store_unavailable" } });
      const warned = h.logs
        .slice(from)
        .map((line) => JSON.parse(line) as { msg?: string; request_id?: string })
        .filter((line) => line.msg === "metadata store unavailable");
      expect(warned.length).toBeGreaterThan(0);
      expect(warned.every((line) => line.request_id === "mcp-store-away")).toBe(true);
    } finally {
      relay.refuse(false);
      await h.close();
      await relay.close();
    }
  }, 60_000);
});
