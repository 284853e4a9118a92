// Pulse's tools on the SDK's server (src/mcp/tool-table.ts), with the SDK's own McpServer and
// the transport the route uses: every failure of a call, its argument check's included, is a
// tool error the client's model reads, and an unforeseen one says nothing of Pulse's insides.

import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { z } from "zod";

import { FULL_GRANT } from "../../src/auth/grants.js";
import { createLogger } from "../../src/logger.js";
import { authInfoOf } from "../../src/mcp/caller.js";
import { ExchangeTransport } from "../../src/mcp/exchange-transport.js";
import { ToolTable } from "../../src/mcp/tool-table.js";
import { toolResult } from "../../src/mcp/tool-results.js";

async function served(register: (tools: ToolTable) => void) {
  const server = new McpServer({ name: "t", version: "1" }, { capabilities: { tools: {} } });
  const tools = new ToolTable(server);
  register(tools);
  tools.answerCalls();
  const transport = new ExchangeTransport();
  server.server.onerror = (error) => transport.serverFailed(error);
  await server.connect(transport);
  const logged: string[] = [];
  const logger = createLogger("info", new Writable({ write: (line, _, done) => (logged.push(String(line)), done()) }));
  const caller = { userId: 1, sessionId: "s", kind: "login" as const, grant: FULL_GRANT, logger, requestId: "req-1" };
  const call = (name: string, args: unknown) => transport.request({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name, arguments: args as Record<string, unknown> } }, { authInfo: authInfoOf(caller) });
  return { call, logged };
}

describe("ToolTable", () => {
  it("runs a tool with its arguments checked, and refuses others naming them", async () => {
    const { call } = await served((tools) =>
      tools.register("echo", { description: "echo", inputSchema: z.strictObject({ text: z.string() }) }, async (args, caller) => toolResult(`${caller.userId}: ${args.text}`, {})),
    );
    expect(await call("echo", { text: "hi" })).toMatchObject({ result: { content: [{ text: "1: hi" }] } });
    expect(await call("echo", { text: "hi", txet: 1 })).toMatchObject({
      result: { isError: true, structuredContent: { code: "invalid_input", errors: [{ path: "arguments.txet", message: "unknown field" }] } },
    });
    expect(await call("nope", {})).toMatchObject({ result: { isError: true, structuredContent: { code: "not_found" } } });
  });

  it("answers an argument check that throws as an internal error with the request id, its message logged, not shown", async () => {
    const secret = "connection string postgres://admin:hunter2@db";
    const { call, logged } = await served((tools) =>
      tools.register(
        "odd",
        {
          description: "odd",
          inputSchema: z.strictObject({
            text: z.string().refine(() => {
              throw new Error(secret);
            }),
          }),
        },
        async () => toolResult("never", {}),
      ),
    );
    const answer = await call("odd", { text: "x" });
    expect(answer).toMatchObject({ result: { isError: true, structuredContent: { code: "internal_error", request_id: "req-1" } } });
    expect(JSON.stringify(answer)).not.toContain("hunter2");
    expect(logged.join("")).toContain("unhandled error in an MCP tool");
  });
});
