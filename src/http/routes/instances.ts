// Seed 000's names for the connection registry: /api/v1/instances with `database` and
// `password` fields. A thin translation onto the same verbs as /databases.

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
  type PublicConnection,
} from "../../services/connections.js";
import { mayReach, requireScope } from "../../auth/grants.js";
import type { AppEnv } from "../context.js";
import { requireLogin, requireReach } from "../credential-rules.js";
import { authErrors, CHANGED_MEANWHILE, connectionTestLimit, requireServerFields, DIALECT, errorResponse, givenName, IdParams, jsonBody, jsonResponse, loginOnly, scopeError } from "../schemas.js";

const tags = ["Instances (seed 000)"];

const fields = {
  name: givenName(200).openapi({ example: "Shop replica" }),
  db_type: DIALECT,
  host: z.string().trim().min(1).max(255).optional().openapi({ example: "localhost" }),
  port: z.number().int().min(1).max(65535).optional().openapi({ example: 5432 }),
  database: z.string().min(1).max(1024).openapi({ description: "Database name; for SQLite, the file path relative to SQLITE_ROOT", example: "ecommerce_db" }),
  username: z.string().max(255).optional().openapi({ example: "db_user" }),
  password: z.string().max(1024).optional().openapi({ example: "db_pass123" }),
  ssl: z.boolean().optional(),
};
const CreateBody = z
  .object(fields)
  .superRefine(requireServerFields)
  .openapi("NewInstance");
const UpdateBody = z.object(fields).partial().openapi("InstanceUpdate");

const Instance = z
  .object({
    id: z.number().int(),
    name: z.string(),
    db_type: DIALECT,
    host: z.string(),
    port: z.number().int(),
    database: z.string(),
    username: z.string(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("Instance", {
    example: {
      id: 101,
      name: "Shop replica",
      db_type: "postgresql",
      host: "localhost",
      port: 5432,
      database: "ecommerce_db",
      username: "db_user",
      created_at: "2026-01-05T10:00:00.000Z",
      updated_at: "2026-01-05T10:00:00.000Z",
    },
  });

const instanceOf = (c: PublicConnection) => ({
  id: c.id,
  name: c.name,
  db_type: c.db_type,
  host: c.host,
  port: c.port,
  database: c.database_name,
  username: c.username,
  created_at: c.created_at,
  updated_at: c.updated_at,
});

const toInput = <T extends { database?: string | undefined; password?: string | undefined }>(body: T) => {
  const { database, password, ...rest } = body;
  return { ...rest, database_name: database, db_password: password };
};

/** The connection service names its fields as /databases does; here its errors name seed 000's
 * (`body.database`, not `body.database_name`). */
function inSeed000Terms(err: unknown): never {
  if (!(err instanceof DomainError)) throw err;
  const rename = (text: string) => text.replace(/\b(?:database_name|db_password)\b/g, (name) => (name === "db_password" ? "password" : "database"));
  const errors = err.extra.errors as { path: string; message: string }[] | undefined;
  const renamed = errors?.map((e) => ({ path: rename(e.path), message: rename(e.message) }));
  if (rename(err.message) === err.message && JSON.stringify(renamed) === JSON.stringify(errors)) throw err;
  throw new DomainError(err.code, rename(err.message), { ...err.extra, ...(renamed && { errors: renamed }) });
}

const REENTRY =
  "Changing db_type, host, port or username, or turning ssl off, needs password in the same request (422 otherwise): the stored password is only sent to the server it was saved for.";
const notFound = errorResponse("No such instance among yours");
const base = "/api/v1/instances";
const routes = {
  create: createRoute({ method: "post", path: base, tags, summary: "Save an instance after proving it connects (as POST /databases/add_db_connection)", request: { body: jsonBody(CreateBody) }, responses: { 201: jsonResponse(Instance, "Saved"), 400: errorResponse("Could not connect"), ...connectionTestLimit, ...loginOnly, 409: errorResponse("quota_exceeded: you keep the most connections allowed (USER_MAX_CONNECTIONS)"), ...authErrors } }),
  list: createRoute({ method: "get", path: base, tags, summary: "Your instances", description: "With an API key limited to some connections: those.", responses: { 200: jsonResponse(z.array(Instance), "Your instances"), ...authErrors } }),
  get: createRoute({ method: "get", path: `${base}/{id}`, tags, summary: "One of your instances", request: { params: IdParams }, responses: { 200: jsonResponse(Instance, "The instance"), 403: errorResponse("Sent with an API key that may not reach this instance"), 404: notFound, ...authErrors } }),
  update: createRoute({ method: "put", path: `${base}/{id}`, tags, summary: "Change an instance; new connection settings are proven by connecting first", description: REENTRY, request: { params: IdParams, body: jsonBody(UpdateBody) }, responses: { 200: jsonResponse(Instance, "Updated"), 400: errorResponse("Could not connect"), ...connectionTestLimit, ...loginOnly, 404: notFound, 409: errorResponse(CHANGED_MEANWHILE), ...authErrors } }),
  remove: createRoute({ method: "delete", path: `${base}/{id}`, tags, summary: "Delete an instance, with its monitored tables, and close its pools", request: { params: IdParams }, responses: { 204: { description: "Deleted" }, ...loginOnly, 404: notFound, ...authErrors } }),
  test: createRoute({ method: "post", path: `${base}/{id}/test`, tags, summary: "Connect now and report latency, server version, read-only and replica status", request: { params: IdParams }, responses: { 200: jsonResponse(z.object({ ok: z.literal(true) }).passthrough(), "Connected", { ok: true, latency_ms: 3.2, server_version: "PostgreSQL 16.4", read_only: true, replica: true, replication_lag_seconds: 1.5 }), 400: errorResponse("Could not connect"), ...connectionTestLimit, ...scopeError("query"), 404: notFound, ...authErrors } }),
};

export function mountInstances(app: OpenAPIHono<AppEnv>, deps: Deps) {
  const user = (c: { get(key: "auth"): { userId: number } }) => c.get("auth").userId;
  const manager = (c: { get(key: "auth"): AppEnv["Variables"]["auth"] }) => requireLogin(c.get("auth"), "add, change or delete instances").userId;

  app.openapi(routes.create, async (c) => {
    const body = toInput(c.req.valid("json"));
    return c.json(instanceOf(await addConnection(deps, manager(c), { ...body, database_name: body.database_name! }).catch(inSeed000Terms)), 201);
  });
  app.openapi(routes.list, async (c) => {
    const grant = c.get("grant");
    return c.json((await listConnectionsOf(deps, user(c))).filter((row) => mayReach(grant, row.id)).map(instanceOf), 200);
  });
  app.openapi(routes.get, async (c) => {
    const { id } = c.req.valid("param");
    requireReach(c.get("grant"), id);
    return c.json(instanceOf(await getConnectionOf(deps, user(c), id)), 200);
  });
  app.openapi(routes.update, async (c) =>
    c.json(instanceOf(await updateConnectionOf(deps, manager(c), c.req.valid("param").id, toInput(c.req.valid("json"))).catch(inSeed000Terms)), 200),
  );
  app.openapi(routes.remove, async (c) => {
    await removeConnection(deps, manager(c), c.req.valid("param").id);
    return c.body(null, 204);
  });
  app.openapi(routes.test, async (c) => {
    const { id } = c.req.valid("param");
    requireScope(c.get("grant"), "query", id);
    return c.json(await testConnection(deps, user(c), id), 200);
  });
}
