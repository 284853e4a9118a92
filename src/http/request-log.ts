// One structured log line per request, tagged with its request id. Bodies, query strings
// and headers are never logged: they may carry passwords or tokens.

import type { Context } from "hono";

import type { Logger } from "../logger.js";
import type { AppEnv } from "./context.js";

/** The request's line, once its response is decided; `started` from performance.now(), `status`
 * the response's, or 499 when its client went away first (request-edge.ts). */
export function logRequest(logger: Logger, c: Context<AppEnv>, started: number, status: number): void {
  // Below the level pino would drop the line anyway; building it (the path means parsing
  // the URL) is most of its cost.
  if (!logger.isLevelEnabled("info")) return;
  const line = { request_id: c.get("requestId"), method: c.req.method, path: c.req.path, status, ms: Math.round(performance.now() - started) };
  // Which API key made the request, by id and prefix: never the key itself.
  const auth = c.get("auth") as AppEnv["Variables"]["auth"] | undefined;
  if (auth?.kind === "key") logger.info({ ...line, key_id: auth.keyId, key_prefix: auth.prefix }, "request");
  else logger.info(line, "request");
}

/** The request's logger, tagged with its request id. Made on first use: most requests log
 * nothing but their one line, and a pino child (bindings serialised, redaction applied) costs
 * more than a small query's guard check. */
export function requestLogger(c: Context<AppEnv>): Logger {
  return loggerOfRequest(c.get("logger"), c.get("requestId"));
}

/** requestLogger, from what it needs of the request: for what outlives the handler's frame
 * without keeping the whole request (src/mcp/route.ts). */
export const loggerOfRequest = (logger: Logger, requestId: string): Logger => logger.child({ request_id: requestId });
