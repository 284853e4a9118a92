// The one place where failures become HTTP responses: domain errors by code, validation
// errors as 422 with field paths, anything unexpected as a generic 500 with a request id.

import type { Context, ErrorHandler, NotFoundHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import { matchedRoutes } from "hono/route";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { ZodError } from "zod";

import { DomainError, RateLimitedError, type ErrorCode } from "../errors.js";
import { isStoreUnavailable, storeUnavailable } from "../store/unavailable.js";
import type { AppEnv } from "./context.js";
import { invalidInput } from "./invalid-input.js";
import { requestLogger } from "./request-log.js";

const STATUS: Record<ErrorCode, ContentfulStatusCode> = {
  invalid_input: 422,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  quota_exceeded: 409,
  rate_limited: 429,
  budget_exceeded: 429,
  sql_refused: 400,
  sql_failed: 400,
  query_timeout: 408,
  // The caller is gone; what is left to read this is a log line, which (as the request's
  // metrics) says 499 instead (request-edge.ts).
  query_cancelled: 408,
  result_too_large: 413,
  connection_failed: 400,
  connection_lost: 502,
  no_database_connected: 409,
  model_not_configured: 503,
  model_failed: 502,
  model_rate_limited: 503,
  model_timeout: 504,
  unavailable: 503,
  shutting_down: 503,
  store_unavailable: 503,
  sessions_unavailable: 503,
  audit_unavailable: 503,
};

export const statusOf = (code: ErrorCode) => STATUS[code];

/** An error answered before any route runs (the body's checks in requestEdge), in the same shape
 * as the error handler's: seed 000's envelope too on the query routes. */
export type Refuse = (c: Context<AppEnv>, status: ContentfulStatusCode, code: string, detail: string) => Response;

export function errorBody(code: string, detail: string, extra: Record<string, unknown> = {}) {
  return { detail, code, ...extra };
}

/** No route: 405 with an Allow header when the path exists under other methods (the caller got
 * the method wrong, not the path), 404 otherwise. Auth runs first, so without a token both are 401. */
export const notFoundHandler =
  (methodsOf: (path: string) => string[], jsonRpc: ReadonlySet<string>): NotFoundHandler<AppEnv> =>
  (c) => {
    const allowed = methodsOf(c.req.path);
    if (allowed.length === 0) return c.json(errorBody("not_found", `No route for ${c.req.method} ${c.req.path}`), 404);
    c.header("Allow", allowed.join(", "));
    const body = errorBody("method_not_allowed", `${c.req.method} is not allowed on ${c.req.path}; use ${allowed.join(", ")}`);
    return c.json(jsonRpc.has(c.req.path) ? withJsonRpcError(body, 405) : body, 405);
  };

/** `body` with the JSON-RPC error an MCP client reads: by default Invalid Request for what the
 * client sent wrong, a server error (as the SDK's transport answers) for the rest. */
export const withJsonRpcError = (body: Record<string, unknown>, status: number, rpcCode = CLIENT_MISTAKES.has(status) ? -32600 : -32000) => ({
  ...body,
  jsonrpc: "2.0",
  error: { code: rpcCode, message: body.detail },
  id: null,
});

/** Statuses that say the request was wrong as sent. */
const CLIENT_MISTAKES = new Set([400, 413, 415, 422]);

/** Seed 000's `error`: the detail, a database's failure introduced as that seed words it. */
const envelopeError = (body: Record<string, unknown>) => (body.code === "sql_failed" ? `SQL execution failed: ${String(body.detail)}` : body.detail);

/** The error handler and validation hook of one app. `enveloped`: the routing paths whose
 * errors also carry seed 000's `{status, data, error}` fields around the usual `{detail, code}`
 * (the query routes); `jsonRpc`: those whose errors also carry a JSON-RPC error, which is what
 * an MCP client reads, whatever refused the request (a query string, a batch, a body too large).
 * Both given by createApp, so this module knows no route. */
export function errorHandling(enveloped: ReadonlySet<string>, jsonRpc: ReadonlySet<string>) {
  const envelope = (c: Context<AppEnv>, body: Record<string, unknown>, status: number) => {
    const paths = matchedRoutes(c).map((route) => route.path);
    if (paths.some((path) => enveloped.has(path))) return { status: "error", data: null, error: envelopeError(body), ...body };
    // By the request's path, not its matched routes: a GET without a token matches none.
    return jsonRpc.has(c.req.path) ? withJsonRpcError(body, status) : body;
  };

  const onError: ErrorHandler<AppEnv> = (err, c) => {
    if (err instanceof DomainError) {
      // Pulse's own limits, and a model server's asking to wait (agents/model-errors.ts).
      const retryAfter = err instanceof RateLimitedError ? err.retryAfterSeconds : err.extra.retry_after_seconds;
      if (typeof retryAfter === "number") c.header("Retry-After", String(retryAfter));
      if (err.code === "unauthorized") c.header("WWW-Authenticate", 'Bearer realm="pulse"');
      // The client's next request goes to a new connection, to an instance that serves it.
      if (err.code === "shutting_down") c.header("Connection", "close");
      return c.json(envelope(c, errorBody(err.code, err.message, err.extra), STATUS[err.code]), STATUS[err.code]);
    }
    if (err instanceof HTTPException) {
      const status = err.status as ContentfulStatusCode;
      const detail =
        status === 400 && /json/i.test(err.message)
          ? "Malformed JSON in request body"
          : status === 415
            ? "Unsupported Media Type: send the body as JSON, with Content-Type: application/json (POST /login also takes application/x-www-form-urlencoded)"
            : err.message || "Bad request";
      return c.json(envelope(c, errorBody(status === 415 ? "unsupported_media_type" : "bad_request", detail), status), status);
    }
    if (isStoreUnavailable(err)) {
      // Not a bug: the metadata store went away; the pool reconnects on the next request.
      requestLogger(c).warn({ err }, "metadata store unavailable");
      const unavailable = storeUnavailable();
      return c.json(envelope(c, errorBody(unavailable.code, unavailable.message), 503), 503);
    }
    const requestId = c.get("requestId");
    requestLogger(c).error({ err }, "unhandled error");
    return c.json(errorBody("internal_error", "Internal server error", { request_id: requestId }), 500);
  };

  /** The validation hook of every route: 422 with each problem's location and message. */
  const validationHook = (result: { success: true } | { success: false; error: ZodError; target?: string }, c: Context<AppEnv>) => {
    if (result.success) return;
    const target = result.target === "json" || result.target === "form" ? "body" : (result.target ?? "body");
    const { detail, errors } = invalidInput(result.error, target, target === "query" ? (field) => (c.req.queries(field)?.length ?? 0) > 1 : undefined);
    return c.json(envelope(c, errorBody("invalid_input", detail, { errors }), 422), 422);
  };

  const refuse: Refuse = (c, status, code, detail) => c.json(envelope(c, errorBody(code, detail), status), status);

  return { onError, validationHook, refuse };
}
