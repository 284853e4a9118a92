// POST /mcp: the Model Context Protocol's Streamable HTTP transport (official SDK), stateless
// with JSON responses, so any instance behind a load balancer answers any call. Authenticated
// like every route (src/http/auth.ts); the body limit and request log of requestEdge apply.

import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";

import type { Deps } from "../deps.js";
import type { AppEnv } from "../http/context.js";
import { withBodyInHandler } from "../http/json-body.js";
import { requestLogger } from "../http/request-log.js";
import { authErrors, errorResponse, jsonBody, jsonResponse } from "../http/schemas.js";
import { authInfoOf } from "./caller.js";
import { createMcpServer } from "./server.js";

const JsonRpcMessage = z
  .object({
    jsonrpc: z.literal("2.0"),
    id: z.union([z.string(), z.number()]).optional(),
    method: z.string(),
    params: z.record(z.string(), z.unknown()).optional(),
  })
  .catchall(z.unknown())
  .openapi("McpRequest", {
    example: { jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "run_query", arguments: { connection_id: 1, sql: "SELECT 1" } } },
  });

const JsonRpcResponse = z
  .object({ jsonrpc: z.literal("2.0"), id: z.union([z.string(), z.number()]).nullable() })
  .catchall(z.unknown())
  .openapi("McpResponse", { example: { jsonrpc: "2.0", id: 2, result: { content: [{ type: "text", text: "?column?\n1\n(1 rows)" }] } } });

const route = createRoute({
  method: "post",
  path: "/mcp",
  tags: ["MCP"],
  summary: "Model Context Protocol endpoint (Streamable HTTP, stateless): Pulse's tools for AI clients",
  description:
    "Send `Accept: application/json, text/event-stream`. Tools: list_connections, describe_schema, run_query, ask, list_alerts, table_health, create_monitor. A tool's failure is a result with `isError: true`; protocol errors are JSON-RPC errors.",
  request: { body: jsonBody(JsonRpcMessage) },
  responses: {
    200: jsonResponse(JsonRpcResponse, "The JSON-RPC response (a tool's failure is a result with isError)"),
    202: { description: "A notification or response from the client, accepted" },
    400: errorResponse("Not a JSON-RPC message (a JSON-RPC error)"),
    406: errorResponse("Accept must name application/json and text/event-stream"),
    413: errorResponse("Request body too large"),
    415: errorResponse("Content-Type must be application/json"),
    401: authErrors[401],
  },
});

/** The JSON body (400 when it is not JSON); the transport checks the media type and the
 * JSON-RPC shape. Within requestEdge's body limit. */
async function mcpBodyOf(c: Context<AppEnv>): Promise<unknown> {
  try {
    return await c.req.json();
  } catch {
    throw new HTTPException(400, { message: "Malformed JSON in request body" });
  }
}

/** Idle servers kept for the next requests: building one (seven tools, the SDK's handlers)
 * costs more CPU than a small query. A server serves one request at a time; a burst beyond
 * this many builds more, and only this many are kept. */
const MAX_IDLE_SERVERS = 16;

export function mountMcp(app: OpenAPIHono<AppEnv>, deps: Deps) {
  const idle: McpServer[] = [];
  app.openapi(withBodyInHandler(app, route), async (c) => {
    const { userId, sessionId } = c.get("auth");
    const caller = { userId, sessionId, grant: c.get("grant"), logger: requestLogger(c), requestId: c.get("requestId") };
    const server = idle.pop() ?? createMcpServer(deps);
    // The SDK refuses to reuse a stateless transport (its message ids would collide): one per request.
    const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    let reusable = false;
    try {
      await server.connect(transport);
      // JSON responses: the Response is complete when this resolves, so closing after is safe.
      // Read by hono, as every route's body is: the transport reading it itself goes through a
      // web Request body stream (measured: 8% of a call's CPU).
      const response = await transport.handleRequest(c.req.raw, { authInfo: authInfoOf(caller), parsedBody: await mcpBodyOf(c) });
      reusable = true;
      // Answered as hono's own bodies are: the Node adapter writes those straight out, while
      // a foreign Response goes through web streams (measured: a tenth of a call's CPU).
      return c.body(await response.text(), response.status as ContentfulStatusCode, Object.fromEntries(response.headers)) as never;
    } finally {
      await server.close();
      if (reusable && idle.length < MAX_IDLE_SERVERS) idle.push(server);
    }
  });
}
