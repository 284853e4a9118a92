// Database sessions (seed 004, exact paths): connect, status, info, disconnect, and the
// session-aware health check. Registered before /databases/{id} so the static paths win.

import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";

import type { Deps } from "../../deps.js";
import { connectSession, disconnectSession, sessionInfo, sessionStatus } from "../../services/database-sessions.js";
import { requireScope } from "../../auth/grants.js";
import type { AppEnv } from "../context.js";
import { requestedSession } from "../credential-rules.js";
import { authErrors, errorResponse, IdParams, jsonResponse, scopeError } from "../schemas.js";

/** Who may connect a session and see its state: what /query and /ask both read. (Its info,
 * with the schema's text, is the `query` scope's.) */
const SESSION_SCOPES = ["query", "ask"] as const;

const tags = ["Sessions"];

const SessionIds = { session_id: z.string(), thread_id: z.string(), user_id: z.number().int() };

const connect = createRoute({
  method: "post",
  path: "/databases/connect_db/{id}",
  tags,
  summary: "Connect your session to one of your databases (opens the pool, caches the schema)",
  request: { params: IdParams },
  responses: {
    200: jsonResponse(
      z.object({ message: z.string(), ...SessionIds, db_id: z.number().int(), database_name: z.string(), tables: z.number().int() }),
      "Connected",
      { message: "Database connection successful and tools updated", session_id: "3f6c2a1e-8d4b-4f0a-9c57-2b1e7d9a4c10", thread_id: "3f6c2a1e-8d4b-4f0a-9c57-2b1e7d9a4c10", user_id: 7, db_id: 101, database_name: "sales", tables: 42 },
    ),
    400: errorResponse("Could not connect"),
    ...scopeError(SESSION_SCOPES),
    404: errorResponse("No such connection among yours"),
    ...authErrors,
  },
});

const status = createRoute({
  method: "get",
  path: "/databases/session-status",
  tags,
  summary: "Whether your session has a database connected, and which",
  responses: {
    200: jsonResponse(z.object({ ...SessionIds, database_connected: z.boolean(), db_id: z.number().int().nullable() }), "Session state", {
      session_id: "3f6c2a1e-8d4b-4f0a-9c57-2b1e7d9a4c10", thread_id: "3f6c2a1e-8d4b-4f0a-9c57-2b1e7d9a4c10", user_id: 7,
      database_connected: true,
      db_id: 101,
    }),
    ...scopeError(SESSION_SCOPES),
    ...authErrors,
  },
});

const SessionData = z
  .object({
    connection_string: z.string().nullable().openapi({ description: "Password masked as ***; no mask when the connection has no password" }),
    created_at: z.string().openapi({ description: "ISO 8601", example: "2025-10-05T10:35:00.000Z" }),
    status: z.string(),
    db_id: z.number().int().nullable(),
    db_schema: z.string().nullable(),
  })
  .openapi("SessionData", {
    example: {
      connection_string: "postgresql://pulse_reader:***@db.internal:5432/sales",
      created_at: "2026-12-03T09:15:00.000Z",
      status: "connected",
      db_id: 101,
      db_schema: "orders(id integer PK, customer_id integer NOT NULL -> customers.id, total numeric(10,2) /* Order total in EUR */) ~120000 rows",
    },
  });

const info = createRoute({
  method: "get",
  path: "/databases/session-info/{session_id}",
  tags,
  summary: "One of your sessions: its connection string (password masked), state and cached schema",
  description: "`redis_data` repeats `session_data` under seed 004's name, whatever the session store is. Times are ISO 8601.",
  request: { params: z.object({ session_id: z.string().min(1).max(100).openapi({ param: { name: "session_id", in: "path" } }) }) },
  responses: {
    200: jsonResponse(
      z.object({
        ...SessionIds,
        database_connected: z.boolean(),
        session_data: SessionData,
        redis_data: SessionData,
        db_session_created_at: z.string().nullable().openapi({ description: "ISO 8601: when the database was connected" }),
      }),
      "Session details (password masked)",
    ),
    ...scopeError("query"),
    404: errorResponse("Session ID does not belong to the authenticated user or session not found"),
    ...authErrors,
  },
});

const disconnect = createRoute({
  method: "post",
  path: "/databases/disconnect-session",
  tags,
  summary: "Remove the session record and close its cached connector",
  responses: {
    200: jsonResponse(z.object({
        message: z.string(),
        ...SessionIds,
        session_removed: z.boolean().openapi({ description: "The session record existed and was removed" }),
        redis_cleanup: z.boolean().openapi({ description: "Seed 004's name for session_removed, whatever the session store", deprecated: true }),
      }), "Disconnected", { message: "Session disconnected successfully", session_id: "3f6c2a1e-8d4b-4f0a-9c57-2b1e7d9a4c10", thread_id: "3f6c2a1e-8d4b-4f0a-9c57-2b1e7d9a4c10", user_id: 7, session_removed: true, redis_cleanup: true }),
    ...scopeError(SESSION_SCOPES),
    ...authErrors,
  },
});

const sessionHealth = createRoute({
  method: "get",
  path: "/health/session",
  tags: ["Health"],
  summary: "Service status with your session's state",
  responses: {
    200: jsonResponse(
      z.object({ status: z.string(), message: z.string(), ...SessionIds, database_connected: z.boolean(), db_id: z.number().int().nullable(), timestamp: z.string() }),
      "Service and session state",
      { status: "healthy", message: "Service is up and running", session_id: "3f6c2a1e-8d4b-4f0a-9c57-2b1e7d9a4c10", thread_id: "3f6c2a1e-8d4b-4f0a-9c57-2b1e7d9a4c10", user_id: 7, database_connected: true, db_id: 101, timestamp: "2026-12-03T09:15:00.000Z" },
    ),
    ...scopeError(SESSION_SCOPES),
    ...authErrors,
  },
});

export function mountSessions(app: OpenAPIHono<AppEnv>, deps: Deps) {
  // A key's session is only ever connected here, to a connection the key may reach: what
  // /query and /ask do on it stays within the key's connections. A key for /ask alone connects
  // its session too (POST /ask reads the session's database), and may see and end its state.
  app.openapi(connect, async (c) => {
    requireScope(c.get("grant"), SESSION_SCOPES, c.req.valid("param").id);
    const { userId, sessionId } = c.get("auth");
    return c.json(await connectSession(deps, userId, sessionId, c.req.valid("param").id), 200);
  });
  app.openapi(status, async (c) => {
    requireScope(c.get("grant"), SESSION_SCOPES);
    const { userId, sessionId } = c.get("auth");
    return c.json(await sessionStatus(deps, userId, sessionId), 200);
  });
  app.openapi(info, async (c) => {
    requireScope(c.get("grant"), "query");
    const auth = c.get("auth");
    const asked = requestedSession(auth, c.req.valid("param").session_id)!;
    return c.json(await sessionInfo(deps, auth.userId, auth.sessionId, asked), 200);
  });
  app.openapi(disconnect, async (c) => {
    requireScope(c.get("grant"), SESSION_SCOPES);
    const { userId, sessionId } = c.get("auth");
    return c.json(await disconnectSession(deps, userId, sessionId), 200);
  });
  app.openapi(sessionHealth, async (c) => {
    requireScope(c.get("grant"), SESSION_SCOPES);
    const { userId, sessionId } = c.get("auth");
    const state = await sessionStatus(deps, userId, sessionId);
    return c.json(
      { status: "healthy", message: "Service is up and running", ...state, timestamp: new Date().toISOString() },
      200,
    );
  });
}
