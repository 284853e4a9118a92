// The transport under each pooled MCP server (src/mcp/exchange-transport.ts), with the SDK's own
// McpServer: every request handed in settles, the ones the protocol will not take included, so
// no HTTP request can wait on an answer that never comes.

import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { JSONRPCRequest } from "@modelcontextprotocol/sdk/types.js";
import { describe, expect, it } from "vitest";

import { ExchangeTransport } from "../../src/mcp/exchange-transport.js";

async function connected() {
  const server = new McpServer({ name: "t", version: "1" }, { capabilities: { tools: {} } });
  server.registerTool("echo", { description: "echo" }, () => ({ content: [{ type: "text", text: "hi" }] }));
  const transport = new ExchangeTransport();
  server.server.onerror = (error) => transport.serverFailed(error);
  await server.connect(transport);
  return transport;
}

describe("ExchangeTransport", () => {
  it("answers a request the protocol takes, and stays ready for the next", async () => {
    const transport = await connected();
    for (const id of [1, "two"]) {
      expect(await transport.request({ jsonrpc: "2.0", id, method: "tools/call", params: { name: "echo", arguments: {} } }, {})).toMatchObject({ id, result: { content: [{ text: "hi" }] } });
    }
  });

  it("fails at once a request the protocol will not take (an id that is not a safe integer), and serves the next", async () => {
    const transport = await connected();
    const bad = { jsonrpc: "2.0", id: 1.5, method: "tools/list" } as unknown as JSONRPCRequest;
    await expect(transport.request(bad, {})).rejects.toThrow(/Unknown message type/);
    expect(await transport.request({ jsonrpc: "2.0", id: 2, method: "tools/list" }, {})).toMatchObject({ id: 2, result: { tools: [expect.objectContaining({ name: "echo" })] } });
  });
});
