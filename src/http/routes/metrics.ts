// GET /metrics: Prometheus's text format, for a scraper holding METRICS_TOKEN. On the public
// list (src/app.ts) because a scraper has no user session; it checks its own token instead.
// Without METRICS_TOKEN it answers 404 saying how to turn metrics on.

import { createHash, timingSafeEqual } from "node:crypto";

import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";

import type { Deps } from "../../deps.js";
import { DomainError } from "../../errors.js";
import type { AppEnv } from "../context.js";
import { errorBody } from "../errors.js";
import { errorResponse } from "../schemas.js";

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/** Compared as SHA-256 digests: equal lengths whatever was sent, and in constant time. */
const digest = (text: string) => createHash("sha256").update(text).digest();

const route = createRoute({
  method: "get",
  path: "/metrics",
  tags: ["Health"],
  summary: "Prometheus metrics (requests, statements, connectors, monitoring, model calls) for a scraper holding METRICS_TOKEN",
  security: [{ metricsToken: [] }],
  responses: {
    200: {
      content: {
        "text/plain": {
          schema: z.string(),
          example:
            '# HELP pulse_http_requests_total HTTP requests answered, by method, route pattern and status\n# TYPE pulse_http_requests_total counter\npulse_http_requests_total{method="POST",route="/query",status="200"} 5120\n',
        },
      },
      description: "Prometheus text format",
    },
    401: errorResponse("Missing or wrong METRICS_TOKEN"),
    404: errorResponse("METRICS_TOKEN is not set: metrics are off"),
  },
});

export function mountMetrics(app: OpenAPIHono<AppEnv>, deps: Deps) {
  const expected = deps.config.metricsToken === undefined ? null : digest(deps.config.metricsToken);
  const registry = deps.metrics.registry;
  app.openAPIRegistry.registerComponent("securitySchemes", "metricsToken", { type: "http", scheme: "bearer", description: "METRICS_TOKEN" });
  app.openapi(route, async (c) => {
    if (!expected) return c.json(errorBody("not_found", "Metrics are off: set METRICS_TOKEN to serve GET /metrics"), 404);
    const sent = BEARER.exec(c.req.header("authorization") ?? "")?.[1];
    if (!sent || !timingSafeEqual(digest(sent), expected)) {
      throw new DomainError("unauthorized", "GET /metrics needs 'Authorization: Bearer <METRICS_TOKEN>'");
    }
    return c.text(await registry.metrics(), 200, { "content-type": registry.contentType });
  });
}
