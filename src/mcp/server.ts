// The MCP server of one request: Pulse's tools, bound to the caller the HTTP edge
// authenticated. Stateless, so any instance answers any call: nothing outlives the request.

import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";

import type { Deps } from "../deps.js";
import type { McpCaller } from "./caller.js";
import { registerAskTool } from "./tools/ask.js";
import { registerConnectionTools } from "./tools/connections.js";
import { registerMonitoringTools } from "./tools/monitoring.js";
import { registerQueryTool } from "./tools/query.js";

const INSTRUCTIONS =
  "Pulse: read-only SQL on the user's databases. Start with list_connections, then describe_schema, then run_query. Results warn when a table read has an open data-quality alert.";

export function createMcpServer(deps: Deps, caller: McpCaller): McpServer {
  const server = new McpServer({ name: "pulse", version: deps.config.version }, { capabilities: { tools: {} }, instructions: INSTRUCTIONS });
  registerConnectionTools(server, deps, caller);
  registerQueryTool(server, deps, caller);
  registerAskTool(server, deps, caller);
  registerMonitoringTools(server, deps, caller);
  return server;
}
