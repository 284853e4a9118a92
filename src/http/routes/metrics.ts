// GET /metrics: Prometheus's text format, for a scraper holding METRICS_TOKEN. On the public
// list (src/app.ts) because a scraper has no user session; it checks its own token instead.
// Without METRICS_TOKEN it answers like a route that does not exist.

import { createHash, timingSafeEqual } from "node:crypto";

import type { OpenAPIHono } from "@hono/zod-openapi";

import type { Deps } from "../../deps.js";
import { DomainError } from "../../errors.js";
import type { AppEnv } from "../context.js";
import { notFoundHandler } from "../errors.js";

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/** Compared as SHA-256 digests: equal lengths whatever was sent, and in constant time. */
const digest = (text: string) => createHash("sha256").update(text).digest();

export function mountMetrics(app: OpenAPIHono<AppEnv>, deps: Deps) {
  const expected = deps.config.metricsToken === undefined ? null : digest(deps.config.metricsToken);
  const registry = deps.metrics.registry;
  app.get("/metrics", async (c) => {
    if (!expected) return notFoundHandler(c);
    const sent = BEARER.exec(c.req.header("authorization") ?? "")?.[1];
    if (!sent || !timingSafeEqual(digest(sent), expected)) {
      throw new DomainError("unauthorized", "GET /metrics needs 'Authorization: Bearer <METRICS_TOKEN>'");
    }
    return c.body(await registry.metrics(), 200, { "content-type": registry.contentType });
  });
}
