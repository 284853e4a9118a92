// POST /mcp: the Model Context Protocol's Streamable HTTP transport, stateless with JSON
// responses, so any instance behind a load balancer answers any call: the HTTP part here, the
// MCP server and its protocol the official SDK's, on pooled servers (exchange-transport.ts says
// why not the SDK's HTTP transport; tool-table.ts how tools are called). Authenticated
// like every route (src/http/auth.ts); the body limit and request log of requestEdge apply.

import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import {
  ClientRequestSchema,
  ErrorCode,
  isJSONRPCNotification,
  isJSONRPCRequest,
  SUPPORTED_PROTOCOL_VERSIONS,
  type JSONRPCMessage,
  type JSONRPCRequest,
} from "@modelcontextprotocol/sdk/types.js";
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";

import type { Deps } from "../deps.js";
import { DomainError } from "../errors.js";
import type { AppEnv } from "../http/context.js";
import { errorBody, withJsonRpcError } from "../http/errors.js";
import { invalidInput } from "../http/invalid-input.js";
import { jsonBodyOf, withBodyInHandler } from "../http/json-body.js";
import { loggerOfRequest } from "../http/request-log.js";
import type { Logger } from "../logger.js";
import { authErrors, boundedInput, errorResponse, jsonBody, jsonResponse } from "../http/schemas.js";
import { stoppingWhen } from "../http/standing.js";
import { authInfoOf, type McpCaller } from "./caller.js";
import { ExchangeTransport } from "./exchange-transport.js";
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

/** Where Pulse serves MCP; its refusals carry a JSON-RPC error, whoever makes them (app.ts). */
export const MCP_PATH = "/mcp";

const route = createRoute({
  method: "post",
  path: MCP_PATH,
  tags: ["MCP"],
  summary: "Model Context Protocol endpoint (Streamable HTTP, stateless): Pulse's tools for AI clients",
  description:
    "Send `Accept: application/json, text/event-stream`. Tools: list_connections, describe_schema, run_query, ask, list_alerts, table_health, create_monitor; resources: each connection's schema (pulse://connections/{id}/schema). A tool's failure is a result with `isError: true`; protocol errors are JSON-RPC errors.",
  request: { body: jsonBody(JsonRpcMessage) },
  responses: {
    200: jsonResponse(JsonRpcResponse, "The JSON-RPC response (a tool's failure is a result with isError)"),
    202: { description: "A notification from the client, accepted (Pulse sends clients no requests, so takes no responses)" },
    400: errorResponse("Malformed JSON, or refused by the transport (also a JSON-RPC error)"),
    422: errorResponse("Not a JSON-RPC request or notification"),
    406: errorResponse("Accept must name application/json and text/event-stream"),
    413: errorResponse("Request body too large"),
    415: errorResponse("Content-Type must be application/json"),
    401: authErrors[401],
  },
});

/** A refusal of the transport's (Accept, protocol version, a message the SDK would not take):
 * a JSON-RPC error, which MCP clients read, that also carries the API's `detail` and `code`, as
 * every 4xx of Pulse does. */
function transportError(c: Context<AppEnv>, status: 400 | 406, code: string, detail: string, rpcCode = -32000) {
  return c.json(withJsonRpcError(errorBody(code, detail), status, rpcCode), status);
}

/** The SDK's schema of each request a client may send, by method. */
const REQUEST_SCHEMAS = new Map(ClientRequestSchema.options.map((schema) => [schema.shape.method.value as string, schema]));

/** The SDK's answer as Pulse words its own: its errors' messages without its "MCP error
 * -32602: " before them, and the params its schema refuses as the client's to fix. (Pulse's
 * tools are called through tool-table.ts, which words their refusals as Pulse's.) */
function inPulsesWords(request: JSONRPCRequest, response: JSONRPCMessage): JSONRPCMessage {
  if ("error" in response) return asClientsError(request, { ...response, error: { ...response.error, message: withoutSdkPrefix(response.error.message) } });
  return response;
}

const withoutSdkPrefix = (message: string) => message.replace(/^MCP error -?\d+: /, "");

/** The SDK answers a request whose params fail its own schema (`tools/call` with `arguments:
 * null`, `initialize` without `params.protocolVersion`) as an internal error (-32603) with zod's
 * issues dumped as JSON for its message; and a call asking for a task (which Pulse's tools do
 * not run as) likewise. It is the client's to fix: invalid params (-32602), saying what to fix.
 * Looked into only when the SDK answers -32603, so a good call pays nothing. */
function asClientsError(request: JSONRPCRequest, response: JSONRPCMessage): JSONRPCMessage {
  if (!("error" in response) || response.error.code !== ErrorCode.InternalError) return response;
  const parsed = REQUEST_SCHEMAS.get(request.method)?.safeParse(request);
  if (parsed && !parsed.success) return { ...response, error: { code: ErrorCode.InvalidParams, message: invalidInput(parsed.error, "request").detail } };
  // Any string passes the schema's uri; the SDK's new URL() then throws.
  if (parsed?.data.method === "resources/read" && !URL.canParse(parsed.data.params.uri)) {
    return { ...response, error: { code: ErrorCode.InvalidParams, message: "request.params.uri: not a URI; resources are pulse://connections/{id}/schema" } };
  }
  if (parsed?.data.method === "tools/call" && parsed.data.params.task !== undefined) {
    return { ...response, error: { code: ErrorCode.InvalidParams, message: "request.params.task: Pulse's tools run only as plain calls, not as tasks; send the call without task" } };
  }
  return response;
}

/** The caller of one request to /mcp: what the tools need of the request, but not the request
 * itself. A caller that held the Hono context (for its logger) kept the whole request, body and
 * response, alive for as long as anything held the caller, the SDK's per-request objects among
 * them: the young collector then promoted about 14 KB a call to the old generation, against 2 KB
 * for /query, and MCP's garbage collection cost twice /query's (bench/RESULTS.md, issue 13). */
class RequestCaller implements McpCaller {
  readonly userId: number;
  readonly sessionId: string;
  readonly kind: McpCaller["kind"];
  readonly grant: McpCaller["grant"];
  readonly requestId: string;
  private readonly appLogger: Logger;

  constructor(c: Context<AppEnv>) {
    ({ userId: this.userId, sessionId: this.sessionId, kind: this.kind } = c.get("auth"));
    this.grant = c.get("grant");
    this.requestId = c.get("requestId");
    this.appLogger = c.get("logger");
  }

  /** Made on first use: a tool logs only when it fails (see requestLogger). */
  get logger(): Logger {
    return loggerOfRequest(this.appLogger, this.requestId);
  }
}

/** How one call is stopped when its client hangs up, its credential is revoked or the instance
 * stops (standing.ts): the SDK is told the request is cancelled, which aborts the signal the
 * tool runs with, and the call answers at once. Stopped before the call was handed in, it is
 * cancelled as soon as it is; stopped once it was answered, it keeps its answer. */
class CallStop {
  private reason: unknown;
  /** Stopped, and the call not answered before: it is (or will be) cut short. */
  private stopped = false;
  private inFlight = false;

  constructor(
    private readonly transport: ExchangeTransport,
    private readonly id: JSONRPCRequest["id"],
  ) {}

  abort(reason: unknown): void {
    if (this.stopped) return;
    this.reason = reason;
    // In flight, a stop that comes as the answer does (a revocation's re-check settling in the
    // same moment) cuts nothing short: the call keeps its answer (a monitor it saved is saved).
    this.stopped = this.inFlight ? this.transport.cancel(this.id, this.words()) : true;
  }

  /** `answered`, the call handed in: cancelled now if it was stopped already. */
  started(answered: Promise<JSONRPCMessage>): Promise<JSONRPCMessage> {
    this.inFlight = true;
    if (this.stopped) this.transport.cancel(this.id, this.words());
    return answered;
  }

  /** Why a call was cut short: a revocation (answered 401 as any request of the credential now
   * is, so that the client authenticates again rather than take it for a cancellation) or the
   * instance stopping (503). Null for a client that hung up, and for a call that was not cut
   * short. */
  revokedOrStopping(): DomainError | null {
    return this.stopped && this.reason instanceof DomainError ? this.reason : null;
  }

  private words(): string {
    return this.reason instanceof DomainError ? this.reason.message : "the client closed the request";
  }
}

/** Idle servers kept for the next requests: building one (seven tools, the SDK's handlers)
 * costs more CPU than a small query. A server serves one request at a time; a burst beyond
 * this many builds more, and only this many are kept. */
const MAX_IDLE_SERVERS = 16;

interface PooledServer {
  server: McpServer;
  transport: ExchangeTransport;
}

export function mountMcp(app: OpenAPIHono<AppEnv>, deps: Deps) {
  const idle: PooledServer[] = [];
  const newServer = async (): Promise<PooledServer> => {
    const server = createMcpServer(deps);
    const transport = new ExchangeTransport();
    server.server.onerror = (error) => transport.serverFailed(error);
    // Connected once, for good: the transport outlives every request it carries.
    await server.connect(transport);
    return { server, transport };
  };

  app.openapi(withBodyInHandler(app, route), async (c) => {
    // Read and checked first, as every route's body is (415, 400, 422 with field paths), but for
    // text: a NUL in a tool's argument is that tool's error, which the client's model reads, not
    // a failure of the whole request.
    const message = await jsonBodyOf(c, JsonRpcMessage, boundedInput).catch((err: unknown) => {
      // Not JSON at all: a JSON-RPC parse error too, which MCP clients read.
      if (err instanceof HTTPException && err.status === 400) return null;
      throw err;
    });
    if (message === null) return transportError(c, 400, "bad_request", "Malformed JSON in request body", -32700) as never;
    // The SDK's own rules too (an id a safe integer, `_meta` an object, ...): a message they
    // refuse would reach no handler and never be answered. Its transport answers the same.
    const isRequest = isJSONRPCRequest(message);
    if (!isRequest && !isJSONRPCNotification(message)) {
      return transportError(c, 400, "invalid_message", "Parse error: Invalid JSON-RPC message (an id is a string or a safe integer, params._meta an object)", -32700) as never;
    }
    // The Streamable HTTP rules for a stateless server answering in JSON (the SDK's transport
    // applies the same): the client must accept both JSON and an event stream, and a protocol
    // version it names must be one the SDK speaks (absent, the protocol's default applies).
    const accept = c.req.header("accept");
    if (!accept?.includes("application/json") || !accept.includes("text/event-stream")) {
      return transportError(c, 406, "not_acceptable", "Not Acceptable: Client must accept both application/json and text/event-stream") as never;
    }
    const version = c.req.header("mcp-protocol-version");
    if (version !== undefined && !SUPPORTED_PROTOCOL_VERSIONS.includes(version)) {
      return transportError(c, 400, "bad_request", `Bad Request: Unsupported protocol version: ${version} (supported versions: ${SUPPORTED_PROTOCOL_VERSIONS.join(", ")})`) as never;
    }
    const extra = { authInfo: authInfoOf(new RequestCaller(c)) };
    const pooled = idle.pop() ?? (await newServer());
    try {
      if (!isRequest) {
        pooled.transport.notify(message, extra);
        return c.body(null, 202) as never;
      }
      // A client that hangs up cancels its call (ask stops calling the model), as POST /ask
      // does, and so does its credential's revocation (its tool sends no statement after): the
      // call is cancelled through the SDK, which aborts the signal its tool runs with.
      const stop = new CallStop(pooled.transport, message.id);
      const answer = await stoppingWhen(c, deps, stop, async () => {
        const reply = await stop.started(pooled.transport.request(message, extra));
        return { reply, stoppedBy: stop.revokedOrStopping() };
      }).catch((err: unknown) => {
        // Found revoked before the call could start (standing.ts): answered as one cut short.
        if (err instanceof DomainError && err.code === "unauthorized") return { reply: null, stoppedBy: err };
        throw err;
      });
      if (answer.stoppedBy) {
        // Stopped as the instance shuts down (503 shutting_down, the connection closed), or by a
        // revocation (401): either way answered with the call's id, for the client to match.
        const status = answer.stoppedBy.code === "unauthorized" ? 401 : 503;
        if (status === 401) c.header("WWW-Authenticate", 'Bearer realm="pulse"');
        else c.header("Connection", "close");
        return c.json({ ...withJsonRpcError(errorBody(answer.stoppedBy.code, answer.stoppedBy.message), status), id: message.id }, status) as never;
      }
      return c.json(inPulsesWords(message, answer.reply!), 200) as never;
    } finally {
      if (idle.length < MAX_IDLE_SERVERS) idle.push(pooled);
    }
  });
}
