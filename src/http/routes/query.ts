// Direct read-only SQL (seed 000 shapes): POST /query on a named connection or the session's,
// POST /databases/{id}/query, and the /api/v1 aliases. Refused SQL, timeouts and spent budgets
// answer 400, 408 and 429 with the reason.

import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";

import type { Deps } from "../../deps.js";
import { requireScope } from "../../auth/grants.js";
import { runQuery, type QueryAnswer } from "../../services/queries.js";
import type { AppEnv } from "../context.js";
import { requestedSession } from "../credential-rules.js";
import { jsonBodyOf, withBodyInHandler } from "../json-body.js";
import { authErrors, errorResponse, HealthSchema, IdParams, jsonBody, jsonResponse, RowId, scopeError } from "../schemas.js";
import { whileStanding } from "../standing.js";

const tags = ["Query"];

// The limit that applies is QUERY_MAX_SQL_CHARS, refused by the guard with a clear reason; this
// is only the setting's ceiling.
const sql = z.string().min(1).max(1_000_000).openapi({ example: "SELECT * FROM users LIMIT 10" });
const maxRows = z.number().int().min(1).max(100_000).optional().openapi({ description: "At most this many rows (capped by QUERY_MAX_ROWS)" });
const timeoutMs = z.number().int().min(100).max(3_600_000).optional().openapi({ description: "Statement timeout (capped by QUERY_TIMEOUT_MS)" });

const QueryBody = z
  .object({
    sql,
    connection_id: RowId.optional().openapi({ description: "Default: the session's connected database" }),
    session_id: z.string().max(100).optional().openapi({ description: "Default: the token's session" }),
    max_rows: maxRows,
    timeout_ms: timeoutMs,
  })
  // connection_id alone decides where the statement runs: a session_id beside it would be
  // dropped, where the caller may have meant that session's database.
  .refine((body) => body.connection_id === undefined || body.session_id === undefined, {
    path: ["session_id"],
    message: "send session_id or connection_id, not both (connection_id runs on that connection, whatever the session)",
  })
  .openapi("QueryRequest");

const ConnectionQueryBody = z.object({ sql, max_rows: maxRows, timeout_ms: timeoutMs }).openapi("ConnectionQueryRequest");

const Cell = z.union([z.string(), z.number(), z.boolean(), z.null(), z.object({ $binary: z.string() })]);
const QueryResponse = z
  .object({
    status: z.literal("ok"),
    data: z.object({
      columns: z.array(z.string()),
      column_types: z.array(z.string()),
      rows: z.array(z.array(Cell)),
      row_count: z.number().int(),
      truncated: z.boolean(),
      execution_time_ms: z.number(),
    }),
    error: z.null(),
    health: HealthSchema,
  })
  .openapi("QueryResult", {
    example: {
      status: "ok",
      data: {
        columns: ["id", "email"],
        column_types: ["integer", "text"],
        rows: [
          [1, "ada@example.com"],
          [2, "grace@example.com"],
        ],
        row_count: 2,
        truncated: false,
        execution_time_ms: 3.2,
      },
      error: null,
      health: [],
    },
  });

const responses = {
  200: jsonResponse(QueryResponse, "Rows of the read"),
  400: errorResponse("Refused by the read-only guard (code sql_refused, with the rule) or failed in the database"),
  ...scopeError("query"),
  404: errorResponse("No such connection or session among yours"),
  408: errorResponse("Statement timeout"),
  409: errorResponse("No database connected for this session"),
  413: errorResponse("A single row exceeds the result size cap"),
  429: errorResponse("The database's or your own query budget is spent (budget_exceeded), or the database could not be reached too often this minute (rate_limited, CONNECTION_TESTS_PER_MINUTE); see Retry-After"),
  502: errorResponse("The connection to the database was lost during the statement (connection_lost)"),
  ...authErrors,
};

const query = createRoute({
  method: "post",
  path: "/query",
  tags,
  summary: "Run one read-only statement on the session's database, or on connection_id",
  request: { body: jsonBody(QueryBody) }, responses });
const connectionQuery = createRoute({
  method: "post",
  path: "/databases/{id}/query",
  tags,
  summary: "Run one read-only statement on one of your connections",
  request: { params: IdParams, body: jsonBody(ConnectionQueryBody) },
  responses,
});

export const queryEnvelope = ({ result, health }: QueryAnswer) => ({
  status: "ok" as const,
  data: {
    columns: result.columns.map((c) => c.name),
    column_types: result.columns.map((c) => c.type),
    rows: result.rows,
    row_count: result.row_count,
    truncated: result.truncated,
    execution_time_ms: result.execution_time_ms,
  },
  error: null,
  health,
});

const routes = [query, createRoute({ ...query, path: "/api/v1/query", summary: "Seed 000's name for POST /query" })] as const;
const connectionRoutes = [
  connectionQuery,
  createRoute({ ...connectionQuery, path: "/api/v1/instances/{id}/query", summary: "Seed 000's name for POST /databases/{id}/query" }),
] as const;

/** Routing paths whose errors also carry seed 000's `{status, data, error}` fields. The error
 * handler (createApp gives it this set) looks the request's matched routes up here, rather than
 * a middleware marking each request, which would cost a layer of hono's chain on every query. */
export const queryRoutingPaths: ReadonlySet<string> = new Set([...routes, ...connectionRoutes].map((route) => route.getRoutingPath()));

export function mountQuery(app: OpenAPIHono<AppEnv>, deps: Deps) {
  for (const route of routes) {
    app.openapi(withBodyInHandler(app, route), async (c) => {
      const auth = c.get("auth");
      const body = await jsonBodyOf(c, QueryBody);
      // Without connection_id, the session's connection: a key's own session is only ever
      // connected to a connection it may reach (see sessions.ts).
      requireScope(c.get("grant"), "query", body.connection_id);
      const sessionId = requestedSession(auth, body.session_id);
      const answer = await whileStanding(c, deps, (signal) =>
        runQuery(deps, auth.userId, auth.sessionId, {
          sql: body.sql,
          grant: c.get("grant"),
          connectionId: body.connection_id,
          sessionId,
          maxRows: body.max_rows,
          timeoutMs: body.timeout_ms,
          signal,
        }),
      );
      return c.json(queryEnvelope(answer), 200);
    });
  }
  for (const route of connectionRoutes) {
    app.openapi(withBodyInHandler(app, route), async (c) => {
      const { userId, sessionId } = c.get("auth");
      const connectionId = c.req.valid("param").id;
      requireScope(c.get("grant"), "query", connectionId);
      const body = await jsonBodyOf(c, ConnectionQueryBody);
      const answer = await whileStanding(c, deps, (signal) =>
        runQuery(deps, userId, sessionId, { sql: body.sql, grant: c.get("grant"), connectionId, maxRows: body.max_rows, timeoutMs: body.timeout_ms, signal }),
      );
      return c.json(queryEnvelope(answer), 200);
    });
  }
}
