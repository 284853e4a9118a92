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

async function healthy(check: () => Promise<void>): Promise<boolean> {
  try {
    await within(check(), PROBE_TIMEOUT_MS, "the probe");
    return true;
  } catch {
    return false;
  }
}

export async function healthReport(deps: Deps) {
  const redisMode = deps.sessions.kind === "redis";
  const [storeOk, sessionsOk] = await Promise.all([healthy(deps.store.ping), healthy(deps.sessions.ping)]);
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
}

export function mountHealth(app: OpenAPIHono<AppEnv>, deps: Deps) {
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
      const report = await healthReport(deps);
      return report.status === "healthy" ? c.json(report, 200) : c.json(report, 503);
    });
  }
}
