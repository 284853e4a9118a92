// API keys: create (the secret is answered once), list without secrets, revoke. Only a login
// token may manage keys: a key can neither mint more keys nor revoke its siblings.

import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";

import { SCOPES } from "../../auth/grants.js";
import type { Deps } from "../../deps.js";
import { createApiKey, listApiKeysOf, revokeApiKey } from "../../services/api-keys.js";
import type { AppEnv } from "../context.js";
import { requireLogin } from "../credential-rules.js";
import { authErrors, errorResponse, givenName, IdParams, Instant, jsonBody, jsonResponse, loginOnly, RowId } from "../schemas.js";

const tags = ["API keys"];
const MANAGE = "manage API keys";

const NewApiKeyBody = z
  .object({
    name: givenName(100).openapi({ example: "Claude Desktop" }),
    scopes: z
      .array(z.enum(SCOPES))
      .min(1)
      .openapi({
        description:
          "`query`: read-only SQL, schemas, database sessions; `ask`: POST /ask; `monitoring:read`: GET monitored tables, runs, alerts, channels; `monitoring:write`: the rest of monitoring",
        example: ["query", "monitoring:read"],
      }),
    connection_ids: z
      .array(RowId)
      .min(1)
      .max(1000)
      .optional()
      .openapi({ description: "Limit the key to these of your connections (default: all of them, present and future)", example: [1] }),
    expires_at: Instant.optional().openapi({ description: "ISO 8601, in the future", example: "2026-12-31T23:59:59Z" }),
    expires_in_days: z.number().int().min(1).max(3650).optional().openapi({ description: "Instead of expires_at", example: 90 }),
  })
  .openapi("NewApiKey");

const ApiKeySchema = z
  .object({
    id: z.number().int(),
    name: z.string(),
    prefix: z.string().openapi({ description: "The key's first characters, to recognise it", example: "pulse_x7Kq" }),
    last_four: z.string().openapi({ description: "Its last four characters", example: "3fZa" }),
    scopes: z.array(z.enum(SCOPES)),
    connection_ids: z.array(z.number().int()).nullable().openapi({ description: "null: every connection of yours" }),
    created_at: z.string(),
    expires_at: z.string().nullable().openapi({ description: "ISO 8601; null: never expires" }),
    last_used_at: z.string().nullable().openapi({ description: "ISO 8601, to within a minute; null: never used" }),
  })
  .openapi("ApiKey");

const CreatedApiKey = ApiKeySchema.extend({
  key: z.string().openapi({
    description: "The secret: send it as `Authorization: Bearer <key>`. Shown this once; Pulse keeps only its hash",
    example: "pulse_x7Kq2mN8vR4tY6wB1cD3eF5gH7jK9lM0nP2qR4s3fZa",
  }),
}).openapi("CreatedApiKey");


const create = createRoute({
  method: "post",
  path: "/api/keys",
  tags,
  summary: "Create an API key (its secret is in this answer only)",
  request: { body: jsonBody(NewApiKeyBody) },
  responses: {
    201: jsonResponse(CreatedApiKey, "The key, with its secret"),
    ...loginOnly,
    409: errorResponse("quota_exceeded: you hold the most keys allowed (USER_MAX_API_KEYS)"),
    ...authErrors,
    422: errorResponse("Invalid input: an unknown scope, a connection not among yours, an expiry in the past"),
  },
});

const list = createRoute({
  method: "get",
  path: "/api/keys",
  tags,
  summary: "Your API keys, without their secrets",
  responses: { 200: jsonResponse(z.array(ApiKeySchema), "Your keys"), ...loginOnly, ...authErrors },
});

const remove = createRoute({
  method: "delete",
  path: "/api/keys/{id}",
  tags,
  summary: "Revoke an API key: refused from the next request on, on every instance",
  request: { params: IdParams },
  responses: { 204: { description: "Revoked" }, ...loginOnly, 404: errorResponse("No such key among yours"), ...authErrors },
});

export function mountApiKeys(app: OpenAPIHono<AppEnv>, deps: Deps) {
  app.openapi(create, async (c) => {
    const { userId } = requireLogin(c.get("auth"), MANAGE);
    return c.json(await createApiKey(deps, userId, c.req.valid("json")), 201);
  });
  app.openapi(list, async (c) => c.json(await listApiKeysOf(deps, requireLogin(c.get("auth"), MANAGE).userId), 200));
  app.openapi(remove, async (c) => {
    await revokeApiKey(deps, requireLogin(c.get("auth"), MANAGE).userId, c.req.valid("param").id);
    return c.body(null, 204);
  });
}
