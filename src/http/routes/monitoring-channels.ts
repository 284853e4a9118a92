// Notification channels (generic webhook, Slack incoming webhook): add, list, rename or
// disable, delete, and a test send. URLs are secrets: sealed at rest, only their origin is ever returned.

import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";

import { requireScope, type Scope } from "../../auth/grants.js";
import type { Deps } from "../../deps.js";
import { addChannel, changeChannel, listChannelsOf, removeChannel, testChannel } from "../../services/channels.js";
import type { AppEnv } from "../context.js";
import { requireEveryConnection } from "../credential-rules.js";
import { authErrors, errorResponse, IdParams, jsonBody, jsonResponse } from "../schemas.js";
import { ChannelSchema, ChannelUpdateBody, NewChannelBody } from "./monitoring-schemas.js";

const tags = ["Monitoring"];
const notFoundResponse = errorResponse("No such channel among yours");
const keyError = (scope: Scope) => ({
  403: errorResponse(`Sent with an API key that lacks the '${scope}' scope, or is limited to some connections (a channel gets every alert)`),
});
const readError = keyError("monitoring:read");
const writeError = keyError("monitoring:write");

const list = createRoute({
  method: "get",
  path: "/api/channels",
  tags,
  summary: "Your notification channels",
  responses: { 200: jsonResponse(z.array(ChannelSchema), "Your channels"), ...readError, ...authErrors },
});

const create = createRoute({
  method: "post",
  path: "/api/channels",
  tags,
  summary: "Add a channel: every alert of yours that opens or resolves is sent to it",
  description: "The URL must be http(s) and its host a public address: loopback, private, link-local (cloud metadata), unique-local, unspecified and multicast addresses are refused with 422, and checked again on every send, unless the server sets WEBHOOK_ALLOW_PRIVATE=true.",
  request: { body: jsonBody(NewChannelBody) },
  responses: {
    201: jsonResponse(ChannelSchema, "The channel (never its URL)"),
    ...writeError,
    409: errorResponse("quota_exceeded: you keep the most channels allowed (USER_MAX_CHANNELS)"),
    ...authErrors,
    422: errorResponse("Invalid input, or a URL whose host is not a public address"),
  },
});

const update = createRoute({
  method: "patch",
  path: "/api/channels/{id}",
  tags,
  summary: "Rename a channel, or disable it (enabled=false: it is sent nothing until enabled again)",
  description: "The URL cannot be changed: add a new channel and delete this one.",
  request: { params: IdParams, body: jsonBody(ChannelUpdateBody) },
  responses: { 200: jsonResponse(ChannelSchema, "The channel afterwards"), ...writeError, 404: notFoundResponse, ...authErrors },
});

const remove = createRoute({
  method: "delete",
  path: "/api/channels/{id}",
  tags,
  summary: "Delete a notification channel",
  request: { params: IdParams },
  responses: { 204: { description: "Deleted" }, ...writeError, 404: notFoundResponse, ...authErrors },
});

const test = createRoute({
  method: "post",
  path: "/api/channels/{id}/test",
  tags,
  summary: "Send a test notification now",
  request: { params: IdParams },
  responses: {
    200: jsonResponse(z.object({ ok: z.literal(true), status_code: z.number().int() }), "Delivered", { ok: true, status_code: 200 }),
    400: errorResponse("Not delivered (code connection_failed, with the reason)"),
    ...writeError,
    404: notFoundResponse,
    429: errorResponse("More than 10 test notifications this minute; see Retry-After"),
    ...authErrors,
  },
});

export function mountMonitoringChannels(app: OpenAPIHono<AppEnv>, deps: Deps) {
  /** The caller, once its credential may use channels with `scope`. */
  const caller = (c: Context<AppEnv>, scope: Scope) => {
    requireScope(c.get("grant"), scope);
    requireEveryConnection(c.get("grant"), "use notification channels");
    return c.get("auth").userId;
  };
  app.openapi(list, async (c) => c.json(await listChannelsOf(deps, caller(c, "monitoring:read")), 200));
  app.openapi(create, async (c) => c.json(await addChannel(deps, caller(c, "monitoring:write"), c.req.valid("json")), 201));
  app.openapi(update, async (c) =>
    c.json(await changeChannel(deps, caller(c, "monitoring:write"), c.req.valid("param").id, c.req.valid("json")), 200),
  );
  app.openapi(remove, async (c) => {
    await removeChannel(deps, caller(c, "monitoring:write"), c.req.valid("param").id);
    return c.body(null, 204);
  });
  app.openapi(test, async (c) => c.json(await testChannel(deps, caller(c, "monitoring:write"), c.req.valid("param").id), 200));
}
