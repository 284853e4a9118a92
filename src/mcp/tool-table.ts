// Pulse's tools on the SDK's server: registered with McpServer, which lists them (tools/list,
// their JSON Schemas made from the same zod schemas), and called through this table, which
// answers tools/call on the SDK's Server and protocol. McpServer's own tools/call handler checked
// a call's arguments asynchronously and passed it through four more layers of promises; under
// load that cost about 20 µs of a call's CPU, a quarter of what MCP cost beyond POST /query
// (bench/RESULTS.md, issue 13). Every tool runs for the caller its request carries (caller.ts),
// and every failure, a refusal of its arguments included, is a tool error worded as Pulse's
// own are (tool-results.ts), never a failed request.

import type { McpServer, ToolCallback } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import {
  CallToolRequestSchema,
  type CallToolRequest,
  type CallToolResult,
  type ServerNotification,
  type ServerRequest,
  type ToolAnnotations,
} from "@modelcontextprotocol/sdk/types.js";
import type { z } from "zod";

import { invalidInput } from "../http/invalid-input.js";
import { callerOf, type McpCaller } from "./caller.js";
import { answering, toolError } from "./tool-results.js";

/** The SDK's context of a call: its `signal` is aborted when the call is cancelled (route.ts). */
type ToolExtra = RequestHandlerExtra<ServerRequest, ServerNotification>;

/** A tool's body: what it answers `caller`; what it throws is answered as a tool error. */
type Run<S extends z.ZodType> = (args: z.output<S>, caller: McpCaller, extra: ToolExtra) => Promise<CallToolResult>;

interface Tool {
  input: z.ZodType;
  run: Run<z.ZodType>;
}

export class ToolTable {
  /** A Map: a name such as `__proto__` or `constructor` is no tool. */
  private readonly tools = new Map<string, Tool>();

  constructor(private readonly server: McpServer) {}

  /** `name`, listed by McpServer and run for tools/call with arguments `inputSchema` takes. */
  register<S extends z.ZodObject>(name: string, config: { description: string; inputSchema: S; annotations?: ToolAnnotations }, run: Run<S>): void {
    this.tools.set(name, { input: config.inputSchema, run: run as Run<z.ZodType> });
    // Were McpServer to call it, it would be called as every call is.
    this.server.registerTool(name, config, ((args: unknown, extra: ToolExtra) => this.call({ name, arguments: args as Record<string, unknown> }, extra)) as ToolCallback<S>);
  }

  /** Answers tools/call from this table rather than McpServer's handler: once every tool is
   * registered, since McpServer sets its handler with its first tool. */
  answerCalls(): void {
    this.server.server.setRequestHandler(CallToolRequestSchema, (request, extra) => this.call(request.params, extra));
  }

  /** The call's answer: whatever fails, the argument check included, is a tool error. (A call
   * asking to run as a task never gets here: the SDK refuses it, since Pulse's server declares
   * no tasks; route.ts words that refusal.) */
  private call(params: Pick<CallToolRequest["params"], "name" | "arguments">, extra: ToolExtra): Promise<CallToolResult> {
    return answering(callerOf(extra), async (caller) => {
      const tool = this.tools.get(params.name);
      if (!tool) return toolError("not_found", `No tool named ${JSON.stringify(params.name)}; tools/list names Pulse's`);
      const args = tool.input.safeParse(params.arguments ?? {});
      if (!args.success) {
        const { detail, errors } = invalidInput(args.error, "arguments");
        return toolError("invalid_input", detail, { errors });
      }
      return tool.run(args.data, caller, extra);
    });
  }
}
