// GET /api/audit: the caller's own audit trail (every statement Pulse sent to their
// databases), filtered by connection, source, outcome, API key and time, newest first,
// keyset-paginated.

import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";

import { listAuditOf } from "../../audit/records.js";
import { STATEMENT_SOURCES } from "../../connectors/statement-recorder.js";
import type { Deps } from "../../deps.js";
import { AUDIT_OUTCOMES } from "../../store/schema.js";
import type { AppEnv } from "../context.js";
import { requireLogin } from "../credential-rules.js";
import { authErrors, Instant, jsonResponse, loginOnly, MAX_ROW_ID, millisecondAtOrAfter, strictInput, wholeNumberText } from "../schemas.js";

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;

const queryParam = (name: string) => ({ param: { name, in: "query" as const } });

const AuditQuery = z
  .object({
    connection_id: wholeNumberText(z.number().int().positive().max(MAX_ROW_ID)).optional().openapi(queryParam("connection_id")),
    source: z.enum(STATEMENT_SOURCES).optional().openapi(queryParam("source")),
    outcome: z.enum(AUDIT_OUTCOMES).optional().openapi(queryParam("outcome")),
    api_key_id: wholeNumberText(z.number().int().positive().max(MAX_ROW_ID))
      .optional()
      .openapi({ ...queryParam("api_key_id"), description: "Only the statements this API key sent (a deleted key's too)" }),
    from: Instant.optional().openapi({ ...queryParam("from"), description: "At or after this time (ISO 8601)", example: "2030-01-01T00:00:00Z" }),
    to: Instant.optional().openapi({ ...queryParam("to"), description: "At or before this time (ISO 8601)" }),
    limit: wholeNumberText(z.number().int().min(1).max(MAX_LIMIT)).default(DEFAULT_LIMIT).openapi({ ...queryParam("limit"), description: `At most ${MAX_LIMIT}` }),
    cursor: wholeNumberText(z.number().int().positive().max(Number.MAX_SAFE_INTEGER))
      .optional()
      .openapi({ ...queryParam("cursor"), description: "The previous page's next_cursor" }),
  })
  .refine((q) => !q.from || !q.to || Date.parse(q.from) <= Date.parse(q.to), { path: ["to"], message: "must not be before from" });

const AuditRecord = z
  .object({
    id: z.number().int(),
    at: z.string().openapi({ description: "When the statement was asked for" }),
    user_id: z.number().int(),
    connection_id: z.number().int(),
    source: z.enum(STATEMENT_SOURCES),
    api_key_id: z.number().int().nullable().openapi({ description: "The API key that sent it (query, ask, and the dry runs of checks it saved and the runs it asked for); null for a login's statements, and for scheduled check runs and introspection" }),
    sql: z.string().openapi({ description: "The statement, cut to its first 4,096 characters" }),
    sql_length: z.number().int(),
    sql_truncated: z.boolean(),
    sql_sha256: z.string().nullable().openapi({ description: "SHA-256 of the whole statement, when it was cut" }),
    row_count: z.number().int().nullable(),
    duration_ms: z.number(),
    outcome: z.enum(AUDIT_OUTCOMES),
    error_code: z.string().nullable(),
    rule: z.string().nullable().openapi({ description: "The guard rule, when refused" }),
  })
  .openapi("AuditRecord");

const AuditPage = z
  .object({
    records: z.array(AuditRecord),
    next_cursor: z.number().int().nullable().openapi({ description: "Pass as cursor for the next page; null at the end" }),
  })
  .openapi("AuditPage", {
    example: {
      records: [
        {
          id: 5012,
          at: "2026-12-03T09:15:00.000Z",
          user_id: 7,
          connection_id: 101,
          source: "query",
          api_key_id: 3,
          sql: "SELECT track_id, name FROM track WHERE track_id = 42",
          sql_length: 52,
          sql_truncated: false,
          sql_sha256: null,
          row_count: 1,
          duration_ms: 2.41,
          outcome: "ok",
          error_code: null,
          rule: null,
        },
      ],
      next_cursor: 5012,
    },
  });

const list = createRoute({
  method: "get",
  path: "/api/audit",
  tags: ["Audit"],
  summary: "Your audit trail: every statement sent to your databases, newest first",
  description:
    "Newest first by `at` (when the statement was asked for), then by id. Records are written in batches a fraction of a second after the statement; introspections are one record each. Records older than AUDIT_RETENTION_DAYS are pruned; a cursor whose record was pruned ends the listing.",
  request: { query: strictInput(AuditQuery) },
  responses: { 200: jsonResponse(AuditPage, "A page of records"), ...loginOnly, ...authErrors },
});

export function mountAudit(app: OpenAPIHono<AppEnv>, deps: Deps) {
  app.openapi(list, async (c) => {
    const q = c.req.valid("query");
    const page = await listAuditOf(deps, requireLogin(c.get("auth"), "read the audit trail").userId, {
      connectionId: q.connection_id,
      source: q.source,
      outcome: q.outcome,
      apiKeyId: q.api_key_id,
      from: q.from ? millisecondAtOrAfter(q.from) : undefined,
      // Dropping finer digits is right for an upper bound taken in.
      to: q.to ? new Date(q.to) : undefined,
      before: q.cursor,
      limit: q.limit,
    });
    return c.json(page, 200);
  });
}
