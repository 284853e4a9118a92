// Schema knowledge of a connection: the cached introspection, and a refresh that re-reads
// the catalog (one query per dialect).

import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";

import type { Deps } from "../../deps.js";
import { schemaJsonOf } from "../../services/database-sessions.js";
import { requireScope } from "../../auth/grants.js";
import type { AppEnv } from "../context.js";
import { authErrors, errorResponse, IdParams, jsonResponse, scopeError } from "../schemas.js";

const tags = ["Databases"];

const SchemaSnapshot = z
  .object({
    dialect: z.enum(["postgresql", "mysql", "sqlite"]),
    introspected_at: z.string(),
    default_schema: z.string().nullable().optional().describe("PostgreSQL: the schema unqualified names resolve to (the first of the role's search_path that exists)"),
    tables: z.array(
      z.object({
        schema: z.string().nullable(),
        name: z.string(),
        kind: z.enum(["table", "view"]),
        comment: z.string().nullable(),
        estimated_rows: z.number().nullable(),
        columns: z.array(z.object({ name: z.string(), type: z.string(), nullable: z.boolean(), comment: z.string().nullable() })),
        primary_key: z.array(z.string()),
        foreign_keys: z.array(
          z.object({
            columns: z.array(z.string()),
            references: z.object({ schema: z.string().nullable(), table: z.string(), columns: z.array(z.string()) }),
          }),
        ),
      }),
    ),
  })
  .openapi("Schema", {
    example: {
      dialect: "postgresql",
      introspected_at: "2026-12-03T09:15:00.000Z",
      tables: [
        {
          schema: "public",
          name: "orders",
          kind: "table",
          comment: null,
          estimated_rows: 120000,
          columns: [
            { name: "id", type: "integer", nullable: false, comment: null },
            { name: "customer_id", type: "integer", nullable: false, comment: null },
            { name: "total", type: "numeric(10,2)", nullable: true, comment: "Order total in EUR" },
          ],
          primary_key: ["id"],
          foreign_keys: [{ columns: ["customer_id"], references: { schema: "public", table: "customers", columns: ["id"] } }],
        },
      ],
    },
  });

const responses = {
  200: jsonResponse(SchemaSnapshot, "Tables and views with columns, keys, comments and estimated rows"),
  400: errorResponse("Could not connect"),
  ...scopeError("query"),
  404: errorResponse("No such connection among yours"),
  429: errorResponse(
    "budget_exceeded: a catalog read is charged to your budget and the database's like a statement; or rate_limited: the database could not be reached too often this minute (CONNECTION_TESTS_PER_MINUTE). See Retry-After",
  ),
  ...authErrors,
};

const get = createRoute({
  method: "get",
  path: "/databases/{id}/schema",
  tags,
  summary: "The connection's tables and views, introspected once and cached",
  request: { params: IdParams },
  responses,
});
const refresh = createRoute({
  method: "post",
  path: "/databases/{id}/schema/refresh",
  tags,
  summary: "Introspect again, replacing the cached schema (on every instance)",
  request: { params: IdParams },
  responses: {
    ...responses,
    429: errorResponse(
      "budget_exceeded: a catalog read is charged to your budget and the database's like a statement; or rate_limited: more connection tests, schema refreshes and failed connections this minute than CONNECTION_TESTS_PER_MINUTE. See Retry-After",
    ),
  },
});

export function mountSchema(app: OpenAPIHono<AppEnv>, deps: Deps) {
  for (const [route, refreshing] of [
    [get, false],
    [refresh, true],
  ] as const) {
    app.openapi(route, async (c) => {
      const { id } = c.req.valid("param");
      requireScope(c.get("grant"), "query", id);
      const json = await schemaJsonOf(deps, c.get("auth").userId, id, refreshing);
      // Written as is: the JSON answer is kept with the schema (c.json would write it anew).
      return c.body(json, 200, { "content-type": "application/json" }) as never;
    });
  }
}
