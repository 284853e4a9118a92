// Pulse's MCP server: its tools, each answering the caller its request carries (caller.ts).
// Stateless, so any instance answers any call: nothing but the tools outlives a request.

import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/ajv";

import type { Deps } from "../deps.js";
import { registerSchemaResources } from "./resources.js";
import { registerAskTool } from "./tools/ask.js";
import { registerConnectionTools } from "./tools/connections.js";
import { registerMonitoringTools } from "./tools/monitoring.js";
import { registerQueryTool } from "./tools/query.js";
import { ToolTable } from "./tool-table.js";

const INSTRUCTIONS =
  "Pulse: read-only SQL on the user's databases. Start with list_connections, then describe_schema, then run_query. Results warn when a table read has an open data-quality alert.";

/** The SDK builds an Ajv instance per server unless given one (for elicitation, which Pulse
 * does not use): 1.4 ms of every request's CPU, measured. One, shared, holds no request state. */
const jsonSchemaValidator = new AjvJsonSchemaValidator();

export function createMcpServer(deps: Deps): McpServer {
  const server = new McpServer({ name: "pulse", version: deps.config.version }, { capabilities: { tools: {} }, instructions: INSTRUCTIONS, jsonSchemaValidator });
  const tools = new ToolTable(server);
  registerConnectionTools(tools, deps);
  registerQueryTool(tools, deps);
  registerAskTool(tools, deps);
  registerMonitoringTools(tools, deps);
  tools.answerCalls();
  registerSchemaResources(server, deps);
  // The SDK announces list changes with its first tool and resource; a stateless server has no
  // stream to send them on (GET /mcp is 405), and its lists change only with a deploy.
  server.server.registerCapabilities({ tools: { listChanged: false }, resources: { listChanged: false } });
  return server;
}
