// The transport under each pooled MCP server (src/mcp/exchange-transport.ts), with the SDK's own
// McpServer: every request handed in settles, the ones the protocol will not take included, so
// no HTTP request can wait on an answer that never comes.

import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { JSONRPCRequest } from "@modelcontextprotocol/sdk/types.js";
import { describe, expect, it, vi } from "vitest";

import { ExchangeTransport } from "../../src/mcp/exchange-transport.js";

const slow: { release: () => void; signal: AbortSignal }[] = [];
const slowCall = (id: JSONRPCRequest["id"]): JSONRPCRequest => ({ jsonrpc: "2.0", id, method: "tools/call", params: { name: "slow", arguments: {} } });

async function connected() {
  const server = new McpServer({ name: "t", version: "1" }, { capabilities: { tools: {} } });
  server.registerTool("echo", { description: "echo" }, () => ({ content: [{ type: "text", text: "hi" }] }));
  // Answers when released, whether or not it was cancelled (as a tool may that does not look
  // at its signal), and tells whether its signal was aborted.
  server.registerTool("slow", { description: "slow" }, async (extra) => {
    await new Promise<void>((release) => slow.push({ release, signal: extra.signal }));
    return { content: [{ type: "text", text: "slow's answer" }] };
  });
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

  it("fails at once a request the protocol will not take (`_meta` not an object), and serves the next", async () => {
    const transport = await connected();
    const bad = { jsonrpc: "2.0", id: 1, method: "tools/list", params: { _meta: "x" } } as unknown as JSONRPCRequest;
    await expect(transport.request(bad, {})).rejects.toThrow(/Unknown message type/);
    expect(await transport.request({ jsonrpc: "2.0", id: 2, method: "tools/list" }, {})).toMatchObject({ id: 2, result: { tools: expect.arrayContaining([expect.objectContaining({ name: "echo" })]) } });
  });

  // Clients' ids repeat (each counts from 0), and a pooled server takes its next request while a
  // cancelled call may still be running.
  it.each([0, "", 7])("cancels a call of id %j, and its late answer is not the next request's of the same id", async (id) => {
    const transport = await connected();
    slow.length = 0;
    const first = transport.request(slowCall(id), {});
    await vi.waitFor(() => expect(slow).toHaveLength(1));
    transport.cancel(id, "the client closed the request");
    expect(await first).toMatchObject({ id, error: { code: -32800 } });
    await vi.waitFor(() => expect(slow[0]!.signal.aborted).toBe(true));
    const second = transport.request(slowCall(id), {});
    await vi.waitFor(() => expect(slow).toHaveLength(2));
    slow[0]!.release();
    await new Promise((settled) => setTimeout(settled, 10));
    slow[1]!.release();
    expect(await second).toMatchObject({ id, result: { content: [{ text: "slow's answer" }] } });
    expect(slow[1]!.signal.aborted).toBe(false);
  });

  // A stop that comes as the answer does (a revocation's re-check settling then) must not turn a
  // finished call into a 401: the route keeps the answer when nothing was cut short.
  it("tells whether a cancellation cut a call short: not once it was answered", async () => {
    const transport = await connected();
    slow.length = 0;
    const call = transport.request(slowCall(3), {});
    await vi.waitFor(() => expect(slow).toHaveLength(1));
    expect(transport.cancel(4, "another call's id")).toBe(false);
    slow[0]!.release();
    expect(await call).toMatchObject({ id: 3, result: { content: [{ text: "slow's answer" }] } });
    expect(transport.cancel(3, "too late")).toBe(false);
    const next = transport.request(slowCall(3), {});
    await vi.waitFor(() => expect(slow).toHaveLength(2));
    expect(transport.cancel(3, "the client closed the request")).toBe(true);
    expect(await next).toMatchObject({ id: 3, error: { code: -32800 } });
  });
});
