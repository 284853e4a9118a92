// One structured log line per request, tagged with its request id. Bodies, query strings
// and headers are never logged: they may carry passwords or tokens.

import type { Context, MiddlewareHandler } from "hono";

import type { Logger } from "../logger.js";
import type { AppEnv } from "./context.js";

export function requestLog(logger: Logger): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const started = performance.now();
    c.set("logger", logger);
    await next();
    logger.info(
      { request_id: c.get("requestId"), method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round(performance.now() - started) },
      "request",
    );
  };
}

/** The request's logger, tagged with its request id. Made on first use: most requests log
 * nothing but their one line, and a pino child (bindings serialised, redaction applied) costs
 * more than a small query's guard check. */
export function requestLogger(c: Context<AppEnv>): Logger {
  return c.get("logger").child({ request_id: c.get("requestId") });
}
