// POST /mcp: the Model Context Protocol's Streamable HTTP transport (official SDK), stateless
// with JSON responses, so any instance behind a load balancer answers any call. Authenticated
// like every route (src/http/auth.ts); the body limit and request log of requestEdge apply.

import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import type { ContentfulStatusCode } from "hono/utils/http-status";

import type { Deps } from "../deps.js";
import type { AppEnv } from "../http/context.js";
import { jsonBodyOf, withBodyInHandler } from "../http/json-body.js";
import { requestLogger } from "../http/request-log.js";
import { authErrors, errorResponse, jsonBody, jsonResponse } from "../http/schemas.js";
import { authInfoOf } from "./caller.js";
import { createMcpServer } from "./server.js";

/** A JSON-RPC request or notification, one per POST (what MCP clients send this server: it
 * sends them no requests, so they send no responses). `params` is open by the protocol
 * (`_meta`, each tool's arguments, which its own schema checks). */
const JsonRpcMessage = z
  .object({
    jsonrpc: z.literal("2.0"),
    id: z.union([z.string(), z.number()]).optional(),
    method: z.string().max(200),
    params: z.record(z.string(), z.unknown()).optional(),
  })
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
    400: errorResponse("Malformed JSON, or refused by the transport (also a JSON-RPC error)"),
    422: errorResponse("Not a JSON-RPC request or notification"),
    406: errorResponse("Accept must name application/json and text/event-stream"),
    413: errorResponse("Request body too large"),
    415: errorResponse("Content-Type must be application/json"),
    401: authErrors[401],
  },
});

const TRANSPORT_ERRORS: Record<number, string> = { 400: "bad_request", 406: "not_acceptable", 415: "unsupported_media_type" };

/** The transport's refusals (Accept, Content-Type, protocol version) are JSON-RPC errors, which
 * MCP clients read; they also get the API's `detail` and `code`, as every 4xx of Pulse does. */
async function withErrorFields(response: Response): Promise<string> {
  const text = await response.text();
  if (response.status < 400) return text;
  let body: { error?: { message?: string } } = {};
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    // Not JSON: the detail below still says what happened.
  }
  return JSON.stringify({ detail: body.error?.message ?? "Bad request", code: TRANSPORT_ERRORS[response.status] ?? "bad_request", ...body });
}

/** Idle servers kept for the next requests: building one (seven tools, the SDK's handlers)
 * costs more CPU than a small query. A server serves one request at a time; a burst beyond
 * this many builds more, and only this many are kept. */
const MAX_IDLE_SERVERS = 16;

export function mountMcp(app: OpenAPIHono<AppEnv>, deps: Deps) {
  const idle: McpServer[] = [];
  app.openapi(withBodyInHandler(app, route), async (c) => {
    const { userId, sessionId, kind } = c.get("auth");
    const caller = { userId, sessionId, kind, grant: c.get("grant"), logger: requestLogger(c), requestId: c.get("requestId") };
    // Read and checked as every route's body is (415, 400, 422 with field paths); the transport
    // reading it itself would go through a web Request body stream (measured: 8% of a call's CPU).
    const body = await jsonBodyOf(c, JsonRpcMessage);
    const server = idle.pop() ?? createMcpServer(deps);
    // The SDK refuses to reuse a stateless transport (its message ids would collide): one per request.
    const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    let reusable = false;
    try {
      await server.connect(transport);
      // JSON responses: the Response is complete when this resolves, so closing after is safe.
      const response = await transport.handleRequest(c.req.raw, { authInfo: authInfoOf(caller), parsedBody: body });
      reusable = true;
      // Answered as hono's own bodies are: the Node adapter writes those straight out, while
      // a foreign Response goes through web streams (measured: a tenth of a call's CPU).
      return c.body(await withErrorFields(response), response.status as ContentfulStatusCode, Object.fromEntries(response.headers)) as never;
    } finally {
      await server.close();
      if (reusable && idle.length < MAX_IDLE_SERVERS) idle.push(server);
    }
  });
}
