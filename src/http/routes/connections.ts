// The connection registry (seed 004 add_db_connection, seed 000 management, seeds 001/003
// /api/connections). Every route is owner-scoped: another user's id answers 404.

import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";

import type { Deps } from "../../deps.js";
import { DomainError } from "../../errors.js";
import {
  addConnection,
  getConnectionOf,
  listConnectionsOf,
  removeConnection,
  testConnection,
  updateConnectionOf,
  type ConnectionInput,
} from "../../services/connections.js";
import { mayReach, requireScope } from "../../auth/grants.js";
import type { AppEnv } from "../context.js";
import { requireLogin, requireReach } from "../credential-rules.js";
import {
  authErrors,
  requireServerFields,
  ConnectionSchema,
  connectionTestLimit,
  DIALECT,
  errorResponse,
  givenName,
  IdParams,
  jsonBody,
  jsonResponse,
  CHANGED_MEANWHILE,
  loginOnly,
  RowId,
  scopeError,
} from "../schemas.js";

const tags = ["Databases"];

const fields = {
  name: givenName(200).optional().openapi({ example: "Shop replica" }),
  db_type: DIALECT,
  host: z.string().trim().min(1).max(255).optional().openapi({ example: "localhost" }),
  port: z.number().int().min(1).max(65535).optional().openapi({ example: 5432 }),
  database_name: z
    .string()
    .min(1)
    .max(1024)
    .openapi({ description: "Database name; for SQLite, the file path relative to SQLITE_ROOT", example: "ecommerce_db" }),
  username: z.string().max(255).optional().openapi({ example: "db_user" }),
  db_password: z.string().max(1024).optional().openapi({ example: "db_pass123" }),
  ssl: z.boolean().optional(),
  owner_id: RowId.optional().openapi({ description: "If sent, must be the caller's id" }),
};

const AddBody = z
  .object(fields)
  .superRefine(requireServerFields)
  .openapi("NewDatabaseConnection");

const UpdateBody = z.object({ ...fields, db_type: DIALECT.optional() }).partial().openapi("DatabaseConnectionUpdate");

const ProbeSchema = z
  .object({
    ok: z.literal(true),
    latency_ms: z.number(),
    server_version: z.string(),
    read_only: z.boolean(),
    replica: z.boolean(),
    replication_lag_seconds: z.number().nullable(),
  })
  .openapi("ConnectionTest", {
    example: { ok: true, latency_ms: 3.2, server_version: "PostgreSQL 16.4", read_only: true, replica: true, replication_lag_seconds: 1.5 },
  });

const REENTRY =
  "Changing db_type, host, port or username, or turning ssl off, needs db_password in the same request (422 otherwise): the stored password is only sent to the server it was saved for.";

const notFoundResponse = errorResponse("No such connection among yours");
const connectFailed = errorResponse("Could not connect with these settings");

const add = createRoute({
  method: "post",
  path: "/databases/add_db_connection",
  tags,
  summary: "Save a database connection after proving it connects",
  request: { body: jsonBody(AddBody) },
  responses: {
    201: jsonResponse(
      z.object({ message: z.string(), db_connection: ConnectionSchema }),
      "The saved connection (never its password)",
    ),
    400: connectFailed, ...connectionTestLimit,
    403: errorResponse("owner_id is not the caller, or sent with an API key (login tokens only)"),
    409: errorResponse("quota_exceeded: you keep the most connections allowed (USER_MAX_CONNECTIONS)"),
    ...authErrors,
  },
});

const list = createRoute({
  method: "get",
  path: "/databases",
  tags,
  summary: "Your saved connections",
  description: "With an API key limited to some connections: those.",
  responses: { 200: jsonResponse(z.array(ConnectionSchema), "Your connections"), ...authErrors },
});

const getOne = createRoute({
  method: "get",
  path: "/databases/{id}",
  tags,
  summary: "One of your connections",
  request: { params: IdParams },
  responses: {
    200: jsonResponse(ConnectionSchema, "The connection"),
    403: errorResponse("Sent with an API key that may not reach this connection"),
    404: notFoundResponse,
    ...authErrors,
  },
});

const update = createRoute({
  method: "put",
  path: "/databases/{id}",
  tags,
  summary: "Change a connection; new connection settings are proven by connecting first",
  description: REENTRY,
  request: { params: IdParams, body: jsonBody(UpdateBody) },
  responses: {
    200: jsonResponse(ConnectionSchema, "The updated connection"),
    400: connectFailed, ...connectionTestLimit,
    ...loginOnly,
    404: notFoundResponse,
    409: errorResponse(CHANGED_MEANWHILE),
    ...authErrors,
  },
});

const remove = createRoute({
  method: "delete",
  path: "/databases/{id}",
  tags,
  summary: "Delete a connection, with its monitored tables, and close its pools",
  request: { params: IdParams },
  responses: { 204: { description: "Deleted" }, ...loginOnly, 404: notFoundResponse, ...authErrors },
});

const test = createRoute({
  method: "post",
  path: "/databases/{id}/test",
  tags,
  summary: "Connect now and report latency, server version, read-only and replica status",
  request: { params: IdParams },
  responses: { 200: jsonResponse(ProbeSchema, "The server answered"), 400: connectFailed, ...connectionTestLimit, ...scopeError("query"), 404: notFoundResponse, ...authErrors },
});

const apiList = createRoute({ ...list, path: "/api/connections", tags: ["Monitoring"] });
const apiCreate = createRoute({
  ...add,
  path: "/api/connections",
  tags: ["Monitoring"],
  responses: { ...add.responses, 201: jsonResponse(ConnectionSchema, "The saved connection") },
});

function checkOwner(ownerId: number | undefined, caller: number) {
  if (ownerId !== undefined && ownerId !== caller) {
    throw new DomainError("forbidden", "owner_id must be your own user id (or omitted)");
  }
}

function inputOf(body: z.infer<typeof AddBody>, caller: number): ConnectionInput {
  const { owner_id, ...input } = body;
  checkOwner(owner_id, caller);
  return input;
}

export function mountConnections(app: OpenAPIHono<AppEnv>, deps: Deps) {
  const manage = "add, change or delete connections";
  app.openapi(add, async (c) => {
    const caller = requireLogin(c.get("auth"), manage).userId;
    const connection = await addConnection(deps, caller, inputOf(c.req.valid("json"), caller));
    return c.json({ message: "Database added successfully", db_connection: connection }, 201);
  });
  for (const route of [list, apiList]) {
    app.openapi(route, async (c) => {
      const grant = c.get("grant");
      return c.json((await listConnectionsOf(deps, c.get("auth").userId)).filter((row) => mayReach(grant, row.id)), 200);
    });
  }
  app.openapi(getOne, async (c) => {
    const { id } = c.req.valid("param");
    requireReach(c.get("grant"), id);
    return c.json(await getConnectionOf(deps, c.get("auth").userId, id), 200);
  });
  app.openapi(update, async (c) => {
    const caller = requireLogin(c.get("auth"), manage).userId;
    const { owner_id, ...changes } = c.req.valid("json");
    checkOwner(owner_id, caller);
    return c.json(await updateConnectionOf(deps, caller, c.req.valid("param").id, changes), 200);
  });
  app.openapi(remove, async (c) => {
    await removeConnection(deps, requireLogin(c.get("auth"), manage).userId, c.req.valid("param").id);
    return c.body(null, 204);
  });
  app.openapi(test, async (c) => {
    const { id } = c.req.valid("param");
    requireScope(c.get("grant"), "query", id);
    return c.json(await testConnection(deps, c.get("auth").userId, id), 200);
  });

  app.openapi(apiCreate, async (c) => {
    const caller = requireLogin(c.get("auth"), manage).userId;
    return c.json(await addConnection(deps, caller, inputOf(c.req.valid("json"), caller)), 201);
  });
}
