// createApp(deps): the whole HTTP surface as a Hono app. No I/O here, so tests build apps
// freely around their own dependencies.

import { OpenAPIHono } from "@hono/zod-openapi";

import type { Deps } from "./deps.js";
import { requireAuth, type PublicRoute } from "./http/auth.js";
import { MAX_BODY_BYTES } from "./http/body-limit.js";
import type { AppEnv } from "./http/context.js";
import { refuseUndeclaredInput } from "./http/declared-input.js";
import { errorHandling, notFoundHandler } from "./http/errors.js";
import { requestEdge } from "./http/request-edge.js";
import { allowedMethods, RememberingRouter } from "./http/router.js";
import { mountAccounts } from "./http/routes/accounts.js";
import { mountApiKeys } from "./http/routes/api-keys.js";
import { mountAsk } from "./http/routes/ask.js";
import { mountAudit } from "./http/routes/audit.js";
import { mountConnections } from "./http/routes/connections.js";
import { DOCS_ROUTES, mountDocs } from "./http/routes/docs.js";
import { mountHealth } from "./http/routes/health.js";
import { mountInstances } from "./http/routes/instances.js";
import { mountMetrics } from "./http/routes/metrics.js";
import { mountMonitoringAlerts } from "./http/routes/monitoring-alerts.js";
import { mountMonitoringChannels } from "./http/routes/monitoring-channels.js";
import { mountMonitoringTables } from "./http/routes/monitoring-tables.js";
import { mountQuery, queryRoutingPaths } from "./http/routes/query.js";
import { mountSchema } from "./http/routes/schema.js";
import { mountSessions } from "./http/routes/sessions.js";
import { errorResponse } from "./http/schemas.js";
import { MCP_PATH, mountMcp } from "./mcp/route.js";

/** The only requests served without a token. Every other one needs a valid, unrevoked token,
 * whatever route it reaches, so a route added anywhere is authenticated unless listed here;
 * unknown paths too (401 before 404: no token, nothing learned about what exists). */
export const PUBLIC_ROUTES: readonly PublicRoute[] = [
  { method: "GET", path: "/health" },
  { method: "GET", path: "/api/health" },
  { method: "POST", path: "/users/" },
  { method: "POST", path: "/users" },
  { method: "POST", path: "/login" },
  { method: "GET", path: "/openapi.json" },
  ...DOCS_ROUTES,
  // Checks METRICS_TOKEN itself (src/http/routes/metrics.ts): scrapers have no user session.
  { method: "GET", path: "/metrics" },
];

/** What any route that reads Pulse's own state may answer while that state is out of reach. */
const UNAVAILABLE = errorResponse(
  "A service Pulse depends on is away: Redis (sessions_unavailable), the metadata store (store_unavailable), or the audit trail cannot record (audit_unavailable); or this instance is shutting down and stopped the request (shutting_down); retry shortly",
);
/** Served without reading Pulse's state: nothing of theirs is ever unavailable. */
const STATELESS_PATHS = new Set(["/openapi.json", "/metrics", ...DOCS_ROUTES.map((route) => route.path)]);

const BODY_REFUSALS = {
  400: errorResponse("Malformed JSON in request body (or a body that is not UTF-8)"),
  413: errorResponse(`Request body larger than ${MAX_BODY_BYTES} bytes`),
  415: errorResponse("Unsupported Media Type: send the Content-Type the route documents"),
};

/** Read by machines that may decorate the URL (a load balancer's health check, a scraper). */
const PROBES = [
  { method: "GET", path: "/health" },
  { method: "GET", path: "/api/health" },
  { method: "GET", path: "/metrics" },
];

/** Where every refusal carries a JSON-RPC error too (the server's own refusals included:
 * serveLimits). */
export const JSON_RPC_PATHS: ReadonlySet<string> = new Set([MCP_PATH]);

export function createApp(deps: Deps) {
  const { onError, validationHook, refuse } = errorHandling(queryRoutingPaths, JSON_RPC_PATHS);
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook, router: new RememberingRouter() });

  app.use(requestEdge(deps.logger, deps.metrics, MAX_BODY_BYTES, refuse));
  app.use(requireAuth(deps, PUBLIC_ROUTES));
  app.use(refuseUndeclaredInput(app, PROBES));

  mountHealth(app, deps);
  mountAccounts(app, deps);
  // Static /databases/... paths before /databases/{id}.
  mountSessions(app, deps);
  mountConnections(app, deps);
  mountSchema(app, deps);
  mountQuery(app, deps);
  mountInstances(app, deps);
  mountAsk(app, deps);
  mountMonitoringTables(app, deps);
  mountMonitoringAlerts(app, deps);
  mountMonitoringChannels(app, deps);
  mountAudit(app, deps);
  mountApiKeys(app, deps);
  mountMcp(app, deps);
  mountMetrics(app, deps);

  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
    description: "A login's access token (JWT), or an API key (`pulse_...`, POST /api/keys)",
  });
  // The document says what the middleware does: a token everywhere, none on the public list;
  // what the body reader answers before any handler, where a route takes a body; and 503
  // wherever Pulse's own state (Redis, the metadata store) may be out of reach.
  for (const definition of app.openAPIRegistry.definitions) {
    if (definition.type !== "route") continue;
    const { method, path, request, responses } = definition.route;
    if (request?.body) for (const [status, response] of Object.entries(BODY_REFUSALS)) responses[status] ??= response;
    if (!STATELESS_PATHS.has(path)) responses[503] ??= UNAVAILABLE;
    // A public route may still name a credential of its own (GET /metrics: METRICS_TOKEN).
    if (PUBLIC_ROUTES.some((open) => open.method === method.toUpperCase() && open.path === path)) definition.route.security ??= [];
  }
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    security: [{ bearer: [] }],
    info: {
      title: "Pulse",
      version: deps.config.version,
      description: "Ask production databases questions in plain language, read-only, and watch their health.",
    },
  });
  mountDocs(app);

  app.notFound(notFoundHandler((path) => allowedMethods(app.router, path), JSON_RPC_PATHS));
  app.onError(onError);
  return app;
}

export type App = ReturnType<typeof createApp>;
