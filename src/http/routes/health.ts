// Liveness and dependency status (seed 004 shape), at /health and /api/health.

import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";

import type { Deps } from "../../deps.js";
import type { AppEnv } from "../context.js";
import { jsonResponse } from "../schemas.js";
import { within } from "../../within.js";

const HealthSchema = z
  .object({
    status: z.enum(["healthy", "degraded"]),
    message: z.string(),
    timestamp: z.string(),
    version: z.string(),
    redis: z.enum(["healthy", "unhealthy", "not configured"]),
    store: z.enum(["healthy", "unhealthy"]),
    store_kind: z.enum(["pglite", "postgresql"]),
    sessions: z.enum(["redis", "in-process (single instance only)"]),
  })
  .openapi("Health", {
    example: { status: "healthy", message: "Service is up and running", timestamp: "2026-12-03T09:15:00.000Z", version: "0.1.0", redis: "healthy", store: "healthy", store_kind: "postgresql", sessions: "redis" },
  });

const PROBE_TIMEOUT_MS = 2000;
/** How long a dependency's answer to a ping stands for every /health that comes after it. */
const PING_REUSE_MS = 1000;

/** Whether a dependency answers a ping, for any number of /health requests at once: one ping in
 * flight at a time, shared by the probes that arrive meanwhile, and its answer reused for
 * PING_REUSE_MS. /health needs no credentials: a ping of its own per probe would let a flood of
 * them queue ahead of real requests for the store's sessions (and make it look down). A probe
 * stops waiting after PROBE_TIMEOUT_MS; the ping it waited for still runs to its end, and no
 * other starts before then. */
function sharedPing(ping: () => Promise<void>): () => Promise<boolean> {
  let pinging: Promise<boolean> | undefined;
  let last: { ok: boolean; at: number } | undefined;
  return async () => {
    if (last && Date.now() - last.at < PING_REUSE_MS) return last.ok;
    pinging ??= ping().then(
      () => true,
      () => false,
    ).then((ok) => {
      last = { ok, at: Date.now() };
      pinging = undefined;
      return ok;
    });
    return within(pinging, PROBE_TIMEOUT_MS, "the probe").catch(() => false);
  };
}

function healthReporter(deps: Deps) {
  const redisMode = deps.sessions.kind === "redis";
  const storeHealthy = sharedPing(deps.store.ping);
  const sessionsHealthy = sharedPing(deps.sessions.ping);
  return async () => {
    const [storeOk, sessionsOk] = await Promise.all([storeHealthy(), sessionsHealthy()]);
    const ok = storeOk && sessionsOk;
    const problems = [!sessionsOk && "Redis unavailable", !storeOk && "metadata store unavailable"].filter(Boolean);
    return {
      status: ok ? ("healthy" as const) : ("degraded" as const),
      message: ok ? "Service is up and running" : `Service running but ${problems.join(" and ")}`,
      timestamp: new Date().toISOString(),
      version: deps.config.version,
      redis: redisMode ? (sessionsOk ? ("healthy" as const) : ("unhealthy" as const)) : ("not configured" as const),
      store: storeOk ? ("healthy" as const) : ("unhealthy" as const),
      store_kind: deps.store.kind,
      sessions: redisMode ? ("redis" as const) : ("in-process (single instance only)" as const),
    };
  };
}

export function mountHealth(app: OpenAPIHono<AppEnv>, deps: Deps) {
  // One reporter for both paths: a flood split between them still pings once.
  const healthReport = healthReporter(deps);
  for (const path of ["/health", "/api/health"]) {
    const route = createRoute({
      method: "get",
      path,
      tags: ["Health"],
      summary: "Service and dependency status",
      responses: {
        200: jsonResponse(HealthSchema, "All dependencies reachable"),
        503: jsonResponse(HealthSchema, "Degraded: a dependency is unreachable"),
      },
    });
    app.openapi(route, async (c) => {
      const report = await healthReport();
      return report.status === "healthy" ? c.json(report, 200) : c.json(report, 503);
    });
  }
}
