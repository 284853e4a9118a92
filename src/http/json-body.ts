// JSON request bodies checked in the handler, in one step: the media type (415), the JSON
// (400), then the route's zod schema (422, the validation hook's answer). It answers as
// zod-openapi's validators do, which otherwise cost two more layers of middleware per request
// (a media-type gate, then hono's validator with an async parse and a hook call).

import type { OpenAPIHono, RouteConfig, z } from "@hono/zod-openapi";
import type { Context } from "hono";
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
