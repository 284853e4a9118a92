// A request carries only what its route declares. A query string on a route that documents no
// query parameters, or a body on a POST, PUT, PATCH or DELETE that documents none, is refused
// as a field a body does not declare is (422 naming it), never dropped: `?dry_run=true` on a
// DELETE, or `{"session_id": ...}` sent to disconnect-session (which then closed the caller's
// own session), would otherwise run as if they had not been sent. Read off the OpenAPI
// document, so a route added later is held to what it documents with no code of its own.

import { z, type OpenAPIHono } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import { matchedRoutes } from "hono/route";

import { invalidFields } from "../errors.js";
import type { AppEnv } from "./context.js";
import { jsonBodyOf } from "./json-body.js";

interface Declared {
  query: boolean;
  body: boolean;
}

const BODY_METHODS = new Set(["POST", "PUT", "PATCH", "DELETE"]);
const NO_FIELDS = z.object({});

/** Refuses what the answering route does not declare. A route's twin without its trailing
 * slash (POST /users for POST /users/) is held to the same; routes the document does not list
 * at all (the docs pages) are left to themselves. Costs a map lookup per request, and a read of
 * the body only where a route takes none. */
export function refuseUndeclaredInput(app: OpenAPIHono<AppEnv>, probes: readonly { method: string; path: string }[]): MiddlewareHandler<AppEnv> {
  // Built on the first request, once every route is mounted.
  let routes: Map<string, Declared> | undefined;
  return async (c, next) => {
    routes ??= declaredInputs(app, probes);
    const route = matchedRoutes(c).find((r) => r.method !== "ALL");
    const declared = route && routes.get(`${route.method} ${withoutTrailingSlash(route.path)}`);
    if (declared) {
      if (!declared.query && c.req.url.includes("?")) {
        const sent = Object.keys(c.req.queries());
        if (sent.length > 0) throw invalidFields(sent.map((name) => ({ path: `query.${name}`, message: "unknown field" })));
      }
      if (!declared.body && BODY_METHODS.has(c.req.method) && (await bodyText(c.req)).length > 0) await jsonBodyOf(c, NO_FIELDS);
    }
    await next();
  };
}

/** What each documented route declares, by method and routing path ("GET /databases/:id").
 * `probes` (health checks and scrapes, which read nothing and change nothing) are left out: an
 * uptime checker adding a cache-busting `?_=...` must not see them fail. */
function declaredInputs(app: OpenAPIHono<AppEnv>, probes: readonly { method: string; path: string }[]): Map<string, Declared> {
  const routes = new Map<string, Declared>();
  for (const definition of app.openAPIRegistry.definitions) {
    if (definition.type !== "route") continue;
    if (probes.some((probe) => probe.method === definition.route.method.toUpperCase() && probe.path === definition.route.path)) continue;
    const { method, path, request } = definition.route;
    // zod-openapi's own rule for the path it mounts a route on.
    routes.set(`${method.toUpperCase()} ${withoutTrailingSlash(path.replaceAll(/\/{(.+?)}/g, "/:$1"))}`, {
      query: request?.query !== undefined,
      body: request?.body !== undefined,
    });
  }
  return routes;
}

const withoutTrailingSlash = (path: string) => (path.length > 1 && path.endsWith("/") ? path.slice(0, -1) : path);

async function bodyText(req: { text(): Promise<string> }): Promise<string> {
  try {
    return await req.text();
  } catch {
    // A JSON body that is not UTF-8 (utf8-body.ts).
    throw new HTTPException(400, { message: "Malformed JSON in request body" });
  }
}
