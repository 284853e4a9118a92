// One structured log line per request, tagged with its request id. Bodies, query strings
// and headers are never logged: they may carry passwords or tokens.

import type { MiddlewareHandler } from "hono";

import type { Logger } from "../logger.js";
import type { AppEnv } from "./context.js";

export function requestLog(logger: Logger): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const started = performance.now();
    const log = logger.child({ request_id: c.get("requestId") });
    c.set("logger", log);
    await next();
    log.info(
      { method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round(performance.now() - started) },
      "request",
    );
  };
}
