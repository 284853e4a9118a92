// What every request passes first: its request id (X-Request-Id, echoed or made), the body
// size limit, strict UTF-8 for a JSON body, its log line and its metrics. One middleware rather
// than several because each layer of hono's chain costs an async call, a closure and a promise
// on every request.

import type { HttpBindings } from "@hono/node-server";
import type { Context, MiddlewareHandler } from "hono";
import { matchedRoutes } from "hono/route";

import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";
import { limitBody } from "./body-limit.js";
import type { AppEnv } from "./context.js";
import type { Refuse } from "./errors.js";
import { logRequest } from "./request-log.js";
import { decodeJsonBodyStrictly } from "./utf8-body.js";

const REQUEST_ID_HEADER = "X-Request-Id";
/** A client's own id is kept when it is short and plain (hono's requestId rule). */
const MAX_CLIENT_ID_LENGTH = 255;
const UNSAFE_ID = /[^\w\-=]/;

export function requestEdge(logger: Logger, metrics: Metrics, maxBodyBytes: number, refuse: Refuse): MiddlewareHandler<AppEnv> {
  const checkBody = limitBody(maxBodyBytes, refuse);
  return async (c, next) => {
    const started = performance.now();
    const id = requestIdOf(c);
    c.set("requestId", id);
    c.set("logger", logger);
    tagResponse(c, id);
    decodeJsonBodyStrictly(c.req);
    const refused = await checkBody(c, next);
    if (refused instanceof Response) c.res = refused;
    const answered = (status: number) => {
      logRequest(logger, c, started, status);
      metrics.request(c.req.method, routeOf(c), status, (performance.now() - started) / 1000);
    };
    const outgoing = (c.env as Partial<HttpBindings> | undefined)?.outgoing;
    if (c.get("streamed") && outgoing && !outgoing.destroyed) {
      // A stream's handler returns at its first event: the request ends with the stream.
      outgoing.once("close", () => answered(outgoing.writableFinished ? c.res.status : CLIENT_CLOSED_REQUEST));
    } else {
      answered(clientGone(c) ? CLIENT_CLOSED_REQUEST : c.res.status);
    }
  };
}

/** Marks the response as a stream (an /ask's events): its request is logged and counted when
 * the stream ends, with the time it took, and as 499 when its client hung up before the end,
 * rather than as a 200 answered in milliseconds. */
export function answeredWhenStreamEnds(c: Context<AppEnv>): void {
  c.set("streamed", true);
}

/** nginx's status for a request whose client closed the connection before the answer: logged
 * and counted as such, not as the answer no one read (a query it stopped is query_cancelled's
 * 408, which would read as a statement timeout). */
const CLIENT_CLOSED_REQUEST = 499;

/** Whether the connection closed before the response was written (as @hono/node-server's
 * request signal says, without making the Request that signal lives on). Never without a Node
 * response (app.request() in tests). */
const clientGone = (c: Context<AppEnv>) => (c.env as Partial<HttpBindings> | undefined)?.outgoing?.destroyed === true;

/** The pattern of the route that answered ("/databases/:id"), or, when a middleware answered
 * (authentication), of the first route it stood in front of; null when only middleware matched
 * (no such route). Not the last route matched: "/databases/session-status" matches
 * "/databases/:id" too, after it. */
function routeOf(c: Context<AppEnv>): string | null {
  const routes = matchedRoutes(c);
  for (let i = Math.max(c.req.routeIndex, 0); i < routes.length; i++) if (routes[i]!.method !== "ALL") return routes[i]!.path;
  return null;
}

function requestIdOf(c: Context<AppEnv>): string {
  const sent = c.req.header(REQUEST_ID_HEADER);
  return sent && sent.length <= MAX_CLIENT_ID_LENGTH && !UNSAFE_ID.test(sent) ? sent : crypto.randomUUID();
}

/** Served by @hono/node-server, the header goes straight onto Node's response, to be merged
 * into the one writeHead. c.header() would give every response a web Headers object, which
 * the adapter then copies into a plain object header by header, instead of its fast path
 * for a response with only a content type (profiled: ~5 µs of a 1-row /query). Without a
 * Node response (app.request() in tests) it is set the ordinary way. */
function tagResponse(c: Context<AppEnv>, id: string): void {
  const outgoing = (c.env as Partial<HttpBindings> | undefined)?.outgoing;
  if (outgoing) outgoing.setHeader(REQUEST_ID_HEADER, id);
  else c.header(REQUEST_ID_HEADER, id);
}
