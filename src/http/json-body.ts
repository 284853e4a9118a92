// JSON request bodies checked in the handler, in one step: the media type (415), the JSON
// (400), then the route's zod schema (422, the validation hook's answer). It answers as
// zod-openapi's validators do, which otherwise cost two more layers of middleware per request
// (a media-type gate, then hono's validator with an async parse and a hook call).

import { z, type OpenAPIHono, type RouteConfig } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import { HTTPException } from "hono/http-exception";

import { DomainError } from "../errors.js";
import type { AppEnv } from "./context.js";
import { invalidInput } from "./invalid-input.js";
import { strictInput } from "./schemas.js";
import { JSON_MEDIA_TYPE } from "./utf8-body.js";

/**
 * The route as app.openapi() should mount it: documented with its body, validated without it
 * (the handler calls jsonBodyOf). Documents the route here, since the mounted copy is hidden.
 */
export function withBodyInHandler<R extends RouteConfig>(app: OpenAPIHono<AppEnv>, route: R): R {
  const { middleware: _middleware, hide, ...documented } = route;
  if (!hide) app.openAPIRegistry.registerPath(documented);
  const { body: _body, ...request } = route.request ?? {};
  // The type stays R so handlers keep c.req.valid() for the other parts; jsonBodyOf returns the body.
  return { ...route, request, hide: true } as R;
}

/** The request's JSON body, valid for `schema` as `checked` makes it (strictInput unless the
 * route checks parts of the body elsewhere); throws what zod-openapi's validators answer. */
export async function jsonBodyOf<S extends z.ZodType>(c: Context<AppEnv>, schema: S, checked: (schema: S) => S = strictInput): Promise<z.output<S>> {
  const type = c.req.header("content-type");
  let value: unknown = {};
  if (type) {
    if (!JSON_MEDIA_TYPE.test(type)) throw new HTTPException(415, { message: "Unsupported Media Type" });
    try {
      value = await c.req.json();
    } catch {
      throw new HTTPException(400, { message: "Malformed JSON in request body" });
    }
  } else if ((await c.req.arrayBuffer()).byteLength > 0) {
    throw new HTTPException(415, { message: "Unsupported Media Type" });
  }
  const result = checked(schema).safeParse(value);
  if (!result.success) {
    const { detail, errors } = invalidInput(result.error, "body");
    throw new DomainError("invalid_input", detail, { errors });
  }
  return result.data;
}

const NO_FIELDS = z.object({});

/**
 * The middleware of a POST, PUT, PATCH or DELETE route that takes no body: a body sent anyway
 * is checked like any route's, as an object with no fields, so a field in it is refused with
 * a 422 naming it instead of being dropped (`{"session_id": ...}` sent to disconnect-session
 * would otherwise close the caller's own session). No body, or `{}`, passes.
 */
export const refuseBody: MiddlewareHandler<AppEnv> = async (c, next) => {
  let sent: string;
  try {
    sent = await c.req.text();
  } catch {
    // A JSON body that is not UTF-8 (utf8-body.ts).
    throw new HTTPException(400, { message: "Malformed JSON in request body" });
  }
  if (sent.length > 0) await jsonBodyOf(c, NO_FIELDS);
  await next();
};
