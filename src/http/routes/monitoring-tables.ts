// Monitored tables (seeds 001/003 /api/tables): CRUD, run now, and the history of check runs.
// Owner-scoped: another user's table or connection answers 404.

import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";

import { hasScope, mayReach, requireScope, requireValueReadScope, type Grant, type Scope } from "../../auth/grants.js";
import type { Deps } from "../../deps.js";
import {
  createMonitoredTableOf,
  getMonitoredTableOf,
  listAllMonitoredTablesOf,
  listMonitoredTablesOf,
  listRunsOf,
  monitoredTableNamesOn,
  movesTable,
  removeMonitoredTable,
  runMonitoredTableNow,
  updateMonitoredTableOf,
} from "../../services/monitored-tables.js";
import type { AppEnv } from "../context.js";
import { authErrors, CHANGED_MEANWHILE, errorResponse, IdParams, jsonBody, jsonResponse, MAX_ROW_ID, pageBeforeOf, scopeError, strictInput, wholeNumberText, withPageBefore } from "../schemas.js";
import { whileStanding } from "../standing.js";
import { CheckRunSchema, MonitoredTableSchema, NewTableBody, RunReportSchema, TableUpdateBody } from "./monitoring-schemas.js";

const tags = ["Monitoring"];
const notFoundResponse = errorResponse("No such monitored table (or connection) among yours");
const readError = scopeError("monitoring:read");
const writeError = scopeError("monitoring:write");
const writeWithSqlError = {
  403: errorResponse("Sent with an API key that lacks the 'monitoring:write' scope, may not reach this connection, or adds custom_sql or freshness checks without the 'query' scope"),
} as const;

/** 403 unless the credential has `scope` and may reach the table's connection; reads the table
 * only for a key limited to some connections. */
export async function requireTableScope(deps: Deps, auth: { userId: number }, grant: Grant, scope: Scope, tableId: number): Promise<void> {
  requireScope(grant, scope);
  if (grant.connectionIds === "all") return;
  requireScope(grant, scope, (await getMonitoredTableOf(deps, auth.userId, tableId)).connection_id);
}

/** The ids of the user's monitored tables that `grant` may reach; null: all of them. */
export async function reachableTableIds(deps: Deps, userId: number, grant: Grant): Promise<Set<number> | null> {
  if (grant.connectionIds === "all") return null;
  return new Set((await monitoredTableNamesOn(deps, userId, (connectionId) => mayReach(grant, connectionId))).map((t) => t.id));
}

/** Tables a page holds at most: each may carry up to 50 checks and 20,000 characters of SQL. */
const MAX_TABLES_PAGE = 500;

const ListQuery = z.object({
  limit: wholeNumberText(z.number().int().min(1).max(MAX_TABLES_PAGE))
    .optional()
    .openapi({ param: { name: "limit", in: "query" }, description: `Tables per page, at most ${MAX_TABLES_PAGE}; without it (nor after_id), all of them`, example: 100 }),
  after_id: wholeNumberText(z.number().int().min(0).max(MAX_ROW_ID))
    .optional()
    .openapi({ param: { name: "after_id", in: "query" }, description: "The last id of the previous page (the Link header's next page names it)" }),
});

/** A page's size when only after_id is given. */
const DEFAULT_TABLES_PAGE = 100;

const list = createRoute({
  method: "get",
  path: "/api/tables",
  tags,
  summary: "Your monitored tables, by id: all of them, or a page at a time",
  description:
    "With an API key limited to some connections: the tables on those. Without `limit` or `after_id`, every table (as many as USER_MAX_MONITORED_TABLES); with them, a page, and a full page comes with `Link: <...>; rel=\"next\"` naming the next one.",
  request: { query: strictInput(ListQuery) },
  responses: { 200: jsonResponse(z.array(MonitoredTableSchema), "A page of your monitored tables"), ...readError, ...authErrors },
});

const create = createRoute({
  method: "post",
  path: "/api/tables",
  tags,
  summary: "Monitor a table: its checks are validated against the live database first",
  description:
    "Each freshness, null_rate and custom_sql check is dry-run once (under the monitoring budget, audited with source monitor, recorded as no run or alert): one that cannot work (a missing column, freshness of a non-timestamp column, custom SQL returning no row or no number) answers 422 naming the check and the reason. A check that merely fails today is saved. PATCH does the same when checks or the table change.",
  request: { body: jsonBody(NewTableBody) },
  responses: {
    201: jsonResponse(MonitoredTableSchema, "The monitored table; its first run is due within one interval"),
    400: errorResponse("Could not connect to the database"),
    ...writeWithSqlError,
    404: notFoundResponse,
    409: errorResponse("quota_exceeded: you monitor the most tables allowed (USER_MAX_MONITORED_TABLES), or they would run more checks an hour than allowed (USER_MAX_CHECK_RUNS_PER_HOUR)"),
    ...authErrors,
  },
});

const getOne = createRoute({
  method: "get",
  path: "/api/tables/{id}",
  tags,
  summary: "One of your monitored tables",
  request: { params: IdParams },
  responses: { 200: jsonResponse(MonitoredTableSchema, "The monitored table"), ...readError, 404: notFoundResponse, ...authErrors },
});

const update = createRoute({
  method: "patch",
  path: "/api/tables/{id}",
  tags,
  summary: "Change interval, checks, alert settings, or pause with enabled=false",
  request: { params: IdParams, body: jsonBody(TableUpdateBody) },
  responses: {
    200: jsonResponse(MonitoredTableSchema, "The updated table"),
    400: errorResponse("Could not connect to the database"),
    ...writeWithSqlError,
    404: notFoundResponse,
    409: errorResponse(`quota_exceeded: the user's enabled tables would run more checks an hour than allowed (USER_MAX_CHECK_RUNS_PER_HOUR); or conflict: ${CHANGED_MEANWHILE}`),
    ...authErrors,
  },
});

const remove = createRoute({
  method: "delete",
  path: "/api/tables/{id}",
  tags,
  summary: "Stop monitoring a table (its runs and alerts go with it)",
  request: { params: IdParams },
  responses: { 204: { description: "Deleted" }, ...writeError, 404: notFoundResponse, ...authErrors },
});

const runNow = createRoute({
  method: "post",
  path: "/api/tables/{id}/run",
  tags,
  summary: "Run the table's checks now and return their outcomes (recorded and alerted as usual)",
  request: { params: IdParams },
  responses: {
    200: jsonResponse(RunReportSchema, "The outcomes"),
    ...writeError,
    404: notFoundResponse,
    409: errorResponse("Checks of the table's connection (busy: connection) or of the table itself (busy: table) are running; retry shortly"),
    429: errorResponse("More runs asked for this minute than MONITOR_MANUAL_RUNS_PER_MINUTE; see Retry-After"),
    ...authErrors,
  },
});

/** Runs a history answers when it names no limit. */
const DEFAULT_RUNS_LISTED = 100;

const RunsQuery = withPageBefore(
  {
    limit: wholeNumberText(z.number().int().min(1).max(1000))
      .default(DEFAULT_RUNS_LISTED)
      .openapi({ param: { name: "limit", in: "query" }, description: "The newest this many, at most 1000", example: 100 }),
    check: z.string().min(1).max(200).optional().openapi({ param: { name: "check", in: "query" }, example: "volume" }),
  },
  // check_runs.id is a bigint: past 2^31 within a busy deployment's life.
  { rows: "runs", verb: "started", row: "run", time: "started_at", id: "run_id", maxId: Number.MAX_SAFE_INTEGER },
);

const runs = createRoute({
  method: "get",
  path: "/api/tables/{id}/runs",
  tags,
  summary: "History of check runs with their metric values, newest first",
  request: { params: IdParams, query: strictInput(RunsQuery) },
  responses: { 200: jsonResponse(z.array(CheckRunSchema), "Check runs"), ...readError, 404: notFoundResponse, ...authErrors },
});

export function mountMonitoringTables(app: OpenAPIHono<AppEnv>, deps: Deps) {
  const tableScope = (c: Context<AppEnv>, scope: Scope, id: number) => requireTableScope(deps, c.get("auth"), c.get("grant"), scope, id);

  app.openapi(list, async (c) => {
    const grant = c.get("grant");
    requireScope(grant, "monitoring:read");
    const query = c.req.valid("query");
    const userId = c.get("auth").userId;
    if (query.limit === undefined && query.after_id === undefined) return c.json(await listAllMonitoredTablesOf(deps, userId, grant.connectionIds), 200);
    const limit = query.limit ?? DEFAULT_TABLES_PAGE;
    const page = await listMonitoredTablesOf(deps, userId, { afterId: query.after_id ?? 0, limit, connectionIds: grant.connectionIds });
    if (page.length === limit) c.header("Link", `</api/tables?limit=${limit}&after_id=${page.at(-1)!.id}>; rel="next"`);
    return c.json(page, 200);
  });
  app.openapi(create, async (c) => {
    const body = c.req.valid("json");
    requireScope(c.get("grant"), "monitoring:write", body.connection_id);
    requireValueReadScope(c.get("grant"), body.checks);
    const table = await whileStanding(c, deps, (signal) => createMonitoredTableOf(deps, c.get("auth").userId, body, { apiKeyId: c.get("grant").apiKeyId, signal }));
    return c.json(table, 201);
  });
  app.openapi(getOne, async (c) => {
    const { id } = c.req.valid("param");
    await tableScope(c, "monitoring:read", id);
    return c.json(await getMonitoredTableOf(deps, c.get("auth").userId, id), 200);
  });
  app.openapi(update, async (c) => {
    const { id } = c.req.valid("param");
    await tableScope(c, "monitoring:write", id);
    const body = c.req.valid("json");
    const grant = c.get("grant");
    if (!hasScope(grant, "query") && (body.checks !== undefined || body.table !== undefined || body.schema !== undefined)) {
      // The checks it will have, and the ones it keeps reading what they read: none, once it
      // reads another table (a freshness check kept, pointed at a table of the key's choosing).
      const current = await getMonitoredTableOf(deps, c.get("auth").userId, id);
      requireValueReadScope(grant, body.checks ?? current.checks, movesTable(current, body) ? [] : current.checks);
    }
    const table = await whileStanding(c, deps, (signal) => updateMonitoredTableOf(deps, c.get("auth").userId, id, body, { apiKeyId: grant.apiKeyId, signal }));
    return c.json(table, 200);
  });
  app.openapi(remove, async (c) => {
    const { id } = c.req.valid("param");
    await tableScope(c, "monitoring:write", id);
    await removeMonitoredTable(deps, c.get("auth").userId, id);
    return c.body(null, 204);
  });
  app.openapi(runNow, async (c) => {
    const { id } = c.req.valid("param");
    await tableScope(c, "monitoring:write", id);
    const report = await whileStanding(c, deps, (signal) => runMonitoredTableNow(deps, c.get("auth").userId, id, { apiKeyId: c.get("grant").apiKeyId, signal }));
    return c.json(report, 200);
  });
  app.openapi(runs, async (c) => {
    await tableScope(c, "monitoring:read", c.req.valid("param").id);
    const q = c.req.valid("query");
    const options = { limit: q.limit, check: q.check, before: pageBeforeOf(q) };
    return c.json(await listRunsOf(deps, c.get("auth").userId, c.req.valid("param").id, options), 200);
  });
}
