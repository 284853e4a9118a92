// Request body size limit. A declared Content-Length is checked from the header alone: hono's
// bodyLimit reads `req.raw.body`, which makes the Node adapter build a full web Request for
// every request (measured: ~15% of a small /query's CPU). Only chunked bodies, whose size is
// unknown up front, go through hono's streaming check.

import type { Context, MiddlewareHandler, Next } from "hono";
import { bodyLimit } from "hono/body-limit";

import type { AppEnv } from "./context.js";
import { bodyCutOff, cutOffBody, errorBody } from "./errors.js";

/** The largest request body Pulse takes (a statement, a question, a connection's settings). */
export const MAX_BODY_BYTES = 1024 * 1024;

/** Runs `next` when the body may be within `maxBytes`; answers the 413 response otherwise.
 * A plain function, not a middleware: requestEdge calls it inline, saving a layer of hono's
 * middleware chain on every request. */
export function limitBody(maxBytes: number): (c: Context<AppEnv>, next: Next) => Promise<unknown> | Response {
  const tooLarge = (c: Context<AppEnv>) => c.json(errorBody("payload_too_large", `Request body larger than ${maxBytes} bytes`), 413);
  const streaming: MiddlewareHandler<AppEnv> = bodyLimit({ maxSize: maxBytes, onError: tooLarge });
  return (c, next) => {
    if (c.req.header("transfer-encoding")) {
      // The streaming check reads the whole body before `next`: a body cut off fails here, out
      // of the request's own handling (and its log line) unless answered here.
      return (streaming(c, next) as Promise<unknown>).catch((err: unknown) => {
        if (bodyCutOff(c)) return cutOffBody(c);
        throw err;
      });
    }
    const length = c.req.header("content-length");
    if (length !== undefined && !(Number(length) <= maxBytes)) return tooLarge(c);
    return next();
  };
}
