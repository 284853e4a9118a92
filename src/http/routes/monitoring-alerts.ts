// Alerts (seeds 001/003 /api/alerts): list by status or table, acknowledge, mute until a
// time, resolve by hand. Owner-scoped: another user's alert answers 404.

import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";

import { requireScope, type Scope } from "../../auth/grants.js";
import type { Deps } from "../../deps.js";
import { actOnAlert, DEFAULT_ALERTS_LISTED, getAlertOf, listAlertsOf } from "../../services/alerts.js";
import type { AppEnv, AuthContext } from "../context.js";
import { authErrors, errorResponse, IdParams, Instant, jsonBody, jsonResponse, MAX_ROW_ID, pageBeforeOf, scopeError, strictInput, wholeNumberText, withPageBefore } from "../schemas.js";
import { ALERT_STATUSES, AlertSchema } from "./monitoring-schemas.js";
import { reachableTableIds, requireTableScope } from "./monitoring-tables.js";

const tooManyActions = errorResponse("More resolves and unmutes this minute than MONITOR_ALERT_ACTIONS_PER_MINUTE; see Retry-After");
const tags = ["Monitoring"];
const notFoundResponse = errorResponse("No such alert among yours");
const notOpen = errorResponse("The alert is not open");

const ListQuery = withPageBefore(
  {
    status: z
      .enum([...ALERT_STATUSES, "active"])
      .optional()
      .openapi({
        param: { name: "status", in: "query" },
        example: "active",
        description: "A shown status (open lists only unacknowledged, unmuted ones), or active: every alert still open, acknowledged, muted or resolving",
      }),
    table_id: wholeNumberText(z.number().int().positive().max(MAX_ROW_ID)).optional().openapi({ param: { name: "table_id", in: "query" } }),
    limit: wholeNumberText(z.number().int().min(1).max(1000))
      .default(DEFAULT_ALERTS_LISTED)
      .openapi({ param: { name: "limit", in: "query" }, description: "The newest this many, at most 1000" }),
  },
  { rows: "alerts", verb: "opened", row: "alert", time: "opened_at", id: "id", maxId: MAX_ROW_ID },
);

const list = createRoute({
  method: "get",
  path: "/api/alerts",
  tags,
  summary: "Alerts that opened at least once, newest first",
  description: "With an API key limited to some connections: the alerts of tables on those.",
  request: { query: strictInput(ListQuery) },
  responses: { 200: jsonResponse(z.array(AlertSchema), "Alerts"), ...scopeError("monitoring:read"), ...authErrors },
});

const getOne = createRoute({
  method: "get",
  path: "/api/alerts/{id}",
  tags,
  summary: "One of your alerts",
  request: { params: IdParams },
  responses: { 200: jsonResponse(AlertSchema, "The alert"), ...scopeError("monitoring:read"), 404: notFoundResponse, ...authErrors },
});

const action = (path: string, summary: string) =>
  createRoute({
    method: "post",
    path,
    tags,
    summary,
    request: { params: IdParams },
    responses: { 200: jsonResponse(AlertSchema, "The alert afterwards"), ...scopeError("monitoring:write"), 404: notFoundResponse, 429: tooManyActions, 409: notOpen, ...authErrors },
  });

const MuteBody = z
  .object({ until: Instant.openapi({ example: "2030-01-01T00:00:00Z", description: "No notifications until then" }) })
  .openapi("AlertMute");

const ack = action("/api/alerts/{id}/ack", "Acknowledge an open alert (it stays open, notifications already sent stand)");
const mute = createRoute({
  method: "post",
  path: "/api/alerts/{id}/mute",
  tags,
  summary: "Send no notifications for this alert until the given time",
  request: { params: IdParams, body: jsonBody(MuteBody) },
  responses: { 200: jsonResponse(AlertSchema, "The alert afterwards"), ...scopeError("monitoring:write"), 404: notFoundResponse, 429: tooManyActions, ...authErrors },
});
const unmute = createRoute({
  method: "post",
  path: "/api/alerts/{id}/unmute",
  tags,
  summary: "End this alert's mute now (an incident still open is notified then, once)",
  request: { params: IdParams },
  responses: { 200: jsonResponse(AlertSchema, "The alert afterwards"), ...scopeError("monitoring:write"), 404: notFoundResponse, 429: tooManyActions, ...authErrors },
});
const resolve = action("/api/alerts/{id}/resolve", "Resolve an open alert by hand (for schema drift: accept the new schema)");

export function mountMonitoringAlerts(app: OpenAPIHono<AppEnv>, deps: Deps) {
  /** Who acted, as the alert shows it: the user, or the key that acted for them. */
  const by = (auth: AuthContext) => (auth.kind === "key" ? `key:${auth.keyId}` : `user:${auth.userId}`);
  /** 403 unless the credential has `scope` and may reach the alert's table's connection. */
  const alertScope = async (c: Context<AppEnv>, scope: Scope, id: number) => {
    const grant = c.get("grant");
    requireScope(grant, scope);
    if (grant.connectionIds === "all") return;
    await requireTableScope(deps, c.get("auth"), grant, scope, (await getAlertOf(deps, c.get("auth").userId, id)).table_id);
  };

  app.openapi(list, async (c) => {
    const q = c.req.valid("query");
    const { userId } = c.get("auth");
    const grant = c.get("grant");
    requireScope(grant, "monitoring:read");
    const reachable = await reachableTableIds(deps, userId, grant);
    return c.json(await listAlertsOf(deps, userId, { status: q.status, tableId: q.table_id, tableIds: reachable, before: pageBeforeOf(q), limit: q.limit }), 200);
  });
  app.openapi(getOne, async (c) => {
    const { id } = c.req.valid("param");
    await alertScope(c, "monitoring:read", id);
    return c.json(await getAlertOf(deps, c.get("auth").userId, id), 200);
  });
  app.openapi(ack, async (c) => {
    const { id } = c.req.valid("param");
    await alertScope(c, "monitoring:write", id);
    return c.json(await actOnAlert(deps, c.get("auth").userId, id, { type: "ack", by: by(c.get("auth")) }), 200);
  });
  app.openapi(mute, async (c) => {
    const { id } = c.req.valid("param");
    await alertScope(c, "monitoring:write", id);
    const until = Date.parse(c.req.valid("json").until);
    return c.json(await actOnAlert(deps, c.get("auth").userId, id, { type: "mute", until, by: by(c.get("auth")) }), 200);
  });
  app.openapi(unmute, async (c) => {
    const { id } = c.req.valid("param");
    await alertScope(c, "monitoring:write", id);
    return c.json(await actOnAlert(deps, c.get("auth").userId, id, { type: "unmute" }), 200);
  });
  app.openapi(resolve, async (c) => {
    const { id } = c.req.valid("param");
    await alertScope(c, "monitoring:write", id);
    return c.json(await actOnAlert(deps, c.get("auth").userId, id, { type: "resolve", by: by(c.get("auth")) }), 200);
  });
}
