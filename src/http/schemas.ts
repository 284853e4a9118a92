// Schemas shared by several routes: errors, ids, the shapes of users and connections.

import { z } from "@hono/zod-openapi";

import { scopesNamed, type Scope } from "../auth/grants.js";
import { missingServerFields } from "../connectors/targets.js";
import type { PageBefore } from "../store/page-before.js";

export const ErrorSchema = z
  .object({
    detail: z.string().openapi({ example: "Database connection not found" }),
    code: z.string().openapi({ example: "not_found" }),
  })
  .passthrough()
  .openapi("Error");

export const errorResponse = (description: string) => ({
  content: { "application/json": { schema: ErrorSchema } },
  description,
});

/** A 409 of a change made from a row another request changed meanwhile (errors.ts changedMeanwhile). */
export const CHANGED_MEANWHILE = "Another request changed it while this change was checked: read it again and send the change anew";

/** A JSON response; `example` (typed by the schema, so it cannot drift from it) is for a schema
 * that has none of its own, such as an inline object. */
export const jsonResponse = <T extends z.ZodType>(schema: T, description: string, example?: z.output<T>) => ({
  content: { "application/json": example === undefined ? { schema } : { schema, example } },
  description,
});

const strictSchemas = new WeakMap<z.ZodType, z.ZodType>();
const boundedSchemas = new WeakMap<z.ZodType, z.ZodType>();

/** The schema refusing fields it does not declare (422 naming them), since a typo such as
 * `instance_id` for `instance` (or `staus` for a list's `status` filter) would otherwise be
 * dropped and the request run on a default. Nested objects declare their own strictness; an
 * object with its own catchall keeps it. `catchall` (unlike `strict`) keeps the schema's
 * OpenAPI name. */
const closed = (schema: z.ZodType) => (schema instanceof z.ZodObject && !schema.def.catchall ? schema.catchall(z.never()) : schema);

/**
 * The schema as a request body or query string: closed, nested at most MAX_BODY_DEPTH levels,
 * and no value may hold what the store cannot (a NUL in a filter failed in the store, 500).
 * Built once per schema: requests reuse it.
 */
export function strictInput<T extends z.ZodType>(schema: T): T {
  let strict = strictSchemas.get(schema);
  if (!strict) strictSchemas.set(schema, (strict = closed(schema).superRefine((body, ctx) => walkBody(body, ctx, true))));
  return strict as T;
}

/** As strictInput, but text is left to the route to check: for a body whose open parts are
 * checked where they are used (an MCP tool's arguments, by the tool: its error is what the
 * client's model reads, where a refused request would be a transport failure). */
export function boundedInput<T extends z.ZodType>(schema: T): T {
  let bounded = boundedSchemas.get(schema);
  if (!bounded) boundedSchemas.set(schema, (bounded = closed(schema).superRefine((body, ctx) => walkBody(body, ctx, false))));
  return bounded as T;
}

/** What makes `text` unstorable, or null: NUL, or half of a surrogate pair. */
function unstorableText(text: string): string | null {
  if (text.includes("\0")) return "must not contain NUL (\\u0000) characters";
  if (LONE_SURROGATE.test(text)) return "must not contain half of a surrogate pair (such as \\ud800 alone): it is no character";
  return null;
}

/** A text argument whose value the store can hold, for inputs boundedInput leaves to the route
 * (an MCP tool's arguments). */
export const storableText = () =>
  z.string().superRefine((text, ctx) => {
    const problem = unstorableText(text);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  });

/** Half of a UTF-16 surrogate pair on its own (JSON's "\\ud800"): no character at all. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Deeper than any body Pulse declares: a body nested further is refused before anything walks it. */
export const MAX_BODY_DEPTH = 64;

interface Visit {
  value: unknown;
  key: string | number | undefined;
  parent: Visit | undefined;
  depth: number;
}

const pathOf = (visit: Visit): (string | number)[] => {
  const path: (string | number)[] = [];
  for (let at: Visit | undefined = visit; at?.key !== undefined; at = at.parent) path.unshift(at.key);
  return path;
};

/** Nesting past MAX_BODY_DEPTH, which costs every walk of the value (and a recursive one its
 * stack) for nothing a route takes; and, with `texts`, what the store cannot hold, whichever
 * field it is in: NUL in text, and a lone surrogate in JSON (jsonb refuses one, so a check or
 * an alert holding one failed to save). Either would fail in the store (500) rather than be
 * refused as input. Walked with a stack of its own, each value once, so the cost follows the
 * body's size. */
function walkBody(body: unknown, ctx: z.RefinementCtx, texts: boolean): void {
  const pending: Visit[] = [{ value: body, key: undefined, parent: undefined, depth: 0 }];
  for (let visit = pending.pop(); visit; visit = pending.pop()) {
    const { value, depth } = visit;
    if (typeof value === "string") {
      if (!texts) continue;
      const problem = unstorableText(value);
      if (problem) ctx.addIssue({ code: "custom", path: pathOf(visit), message: problem });
    } else if (value && typeof value === "object") {
      if (depth === MAX_BODY_DEPTH) {
        ctx.addIssue({ code: "custom", path: pathOf(visit), message: `nests deeper than ${MAX_BODY_DEPTH} levels` });
        return;
      }
      const entries: [string | number, unknown][] = Array.isArray(value) ? value.map((item, i) => [i, item]) : Object.entries(value);
      for (let i = entries.length - 1; i >= 0; i--) pending.push({ value: entries[i]![1], key: entries[i]![0], parent: visit, depth: depth + 1 });
    }
  }
}

export const jsonBody = <T extends z.ZodType>(schema: T) => ({
  content: { "application/json": { schema: strictInput(schema) } },
  required: true,
});

/** A point in time as ISO 8601 with its offset, within years 1 to 9999 in UTC: the store keeps
 * no year 0, and a later year (9999-12-31T23:59-23:59 is in 10000) has no ISO form it reads. */
export const Instant = z.iso.datetime({ offset: true }).refine((value) => {
  const year = new Date(value).getUTCFullYear();
  return year >= 1 && year <= 9999;
}, "must fall within years 1 to 9999 (UTC)");

/** The last millisecond an Instant may name: the store refuses a later time (year 10000). */
const LAST_MILLISECOND = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/** The first millisecond at or after `instant` (an Instant's text): times are kept to the
 * millisecond, and new Date() drops finer digits, so `from=…33.1005Z` would take in 33.100.
 * Past the last one there is none: the last stands for it (no time is kept that late). */
export function millisecondAtOrAfter(instant: string): Date {
  const date = new Date(instant);
  const finer = /\.\d{3}(\d+)/.exec(instant)?.[1];
  return finer && /[1-9]/.test(finer) ? new Date(Math.min(date.getTime() + 1, LAST_MILLISECOND)) : date;
}

/** What has no place in a name a person gives (a user's, an API key's, a connection's, a
 * channel's), which others read in lists, notifications and logs: control characters (a line
 * break, a terminal's escape sequences) and text-direction marks, with which "admin\u202egnp.exe"
 * reads "admingpn.exe" reversed. Joiners stay: names and emoji are written with them. */
const NOT_IN_NAMES = /[\p{Cc}\u202a-\u202e\u2066-\u2069]/u;
/** A character that shows: a name of only invisible ones (a zero-width space) reads as none. */
const VISIBLE = /[\p{L}\p{N}\p{P}\p{S}]/u;

/** A name a person gives, trimmed, of 1 to `max` characters. */
export const givenName = (max: number) =>
  z
    .string()
    .trim()
    .min(1)
    .max(max)
    // NUL is every text's to refuse (strictInput), in words that name it.
    .refine((name) => name.includes("\0") || !NOT_IN_NAMES.test(name), "must not contain control characters or text-direction marks")
    .refine((name) => VISIBLE.test(name), "must contain a visible character");

/** The ids of Pulse's own rows are PostgreSQL `integer`s: a larger one is invalid input (422),
 * not a query that fails in the store (500). */
export const MAX_ROW_ID = 2 ** 31 - 1;
export const RowId = z.number().int().positive().max(MAX_ROW_ID);

/** A whole number as a path or query string gives it: digits only. "0x2", "1e0", "+1", "01" and
 * "1 " are refused rather than read as 2, 1, 1, 1 and 1 (one number, one spelling, as everywhere
 * else a number is read), and a number too long to read is refused by the schema's maximum. (A
 * parameter given twice is refused as such by the validation hook, whatever its type.) */
export const wholeNumberText = <T extends z.ZodNumber>(number: T) =>
  z.preprocess((value, ctx) => {
    if (typeof value !== "string") return value;
    if (/^(0|[1-9]\d*)$/.test(value)) return Math.min(Number(value), Number.MAX_VALUE);
    ctx.addIssue({ code: "custom", message: value === "" ? "is empty: give a whole number, or leave it out" : "must be a whole number, written in digits only" });
    return value;
  }, number);

/** How a list read newest first by a time, then by id, names its rows: "runs", "started", "run",
 * "started_at", "run_id". */
interface PagedRows {
  rows: string;
  verb: string;
  row: string;
  time: string;
  id: string;
  maxId: number;
}

/**
 * `shape` with the query parameters that page such a list: `before` (the last row's time) and
 * `before_id` (its id, for the rows of that very time), which needs `before`. Read them with
 * pageBeforeOf.
 */
export function withPageBefore<T extends z.ZodRawShape>(shape: T, words: PagedRows) {
  const { rows, verb, row, time, id } = words;
  return z
    .object({
      ...shape,
      before: Instant.optional().openapi({ param: { name: "before", in: "query" }, description: `${rows[0]!.toUpperCase()}${rows.slice(1)} ${verb} before this time` }),
      before_id: wholeNumberText(z.number().int().positive().max(words.maxId))
        .optional()
        .openapi({
          param: { name: "before_id", in: "query" },
          description: `With before: also the ${rows} ${verb} at that very time whose ${id} is lower. Pass the last ${row}'s ${time} and ${id} to page on: several often share a millisecond, and before alone would skip the rest of them`,
        }),
    })
    // (Typed as the two fields: TypeScript does not see them through the generic shape.)
    .refine((q) => (q as PageBeforeParams).before_id === undefined || (q as PageBeforeParams).before !== undefined, {
      path: ["before_id"],
      message: `needs before (the same ${row}'s ${time})`,
    });
}

interface PageBeforeParams {
  before?: string | undefined;
  before_id?: number | undefined;
}

/** Where the previous page ended, from withPageBefore's parameters. */
export const pageBeforeOf = (q: PageBeforeParams): PageBefore | undefined =>
  q.before === undefined ? undefined : { at: new Date(q.before), id: q.before_id };

export const IdParams = z.object({
  id: wholeNumberText(z.number().int().positive().max(MAX_ROW_ID)).openapi({ param: { name: "id", in: "path" }, example: 101 }),
});

export const UserSchema = z
  .object({
    id: z.number().int(),
    name: z.string(),
    email: z.string(),
    created_at: z.string(),
  })
  .openapi("User", { example: { id: 7, name: "Ada Lovelace", email: "ada@example.com", created_at: "2026-12-03T09:15:00.000Z" } });

export const DIALECT = z.enum(["postgresql", "mysql", "sqlite"]);

/** Server dialects need a host and a user; SQLite names only a file. */
export function requireServerFields(v: { db_type: string; host?: string | undefined; username?: string | undefined }, ctx: z.RefinementCtx) {
  for (const field of missingServerFields(v.db_type, v)) ctx.addIssue({ code: "custom", path: [field], message: `required for ${v.db_type}` });
}

export const ConnectionSchema = z
  .object({
    id: z.number().int(),
    name: z.string(),
    db_type: DIALECT,
    host: z.string(),
    port: z.number().int(),
    database_name: z.string(),
    username: z.string(),
    ssl: z.boolean(),
    owner_id: z.number().int(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("DatabaseConnection", {
    example: {
      id: 101,
      name: "Sales replica",
      db_type: "postgresql",
      host: "db.internal",
      port: 5432,
      database_name: "sales",
      username: "pulse_reader",
      ssl: true,
      owner_id: 7,
      created_at: "2026-12-03T09:15:00.000Z",
      updated_at: "2026-12-03T09:15:00.000Z",
    },
  });

export const authErrors = {
  401: errorResponse("Missing, invalid or expired token"),
  422: errorResponse("Invalid input"),
} as const;

/** A route that connects to the settings given or saved: limited per user (a port scanner else). */
export const connectionTestLimit = { 429: errorResponse("More connection attempts this minute than CONNECTION_TESTS_PER_MINUTE; see Retry-After") } as const;

/** A route only a login token may use (README "API keys"): 403 with an API key. */
export const loginOnly = { 403: errorResponse("Sent with an API key, which may not use this route: use a login token") } as const;

/** A route an API key may use with `scope`: 403 without it or for a connection it may not reach. */
export const scopeError = (scope: Scope | readonly Scope[]) =>
  ({ 403: errorResponse(`Sent with an API key that lacks the ${scopesNamed(scope)} scope or may not reach this connection`) }) as const;

/** Health-aware results (src/services/table-health.ts): open alerts on the tables a read read. */
export const HealthSchema = z
  .array(
    z
      .object({
        table: z.string().openapi({ description: "The monitored table, `schema.table` (or `table` on SQLite)" }),
        table_id: z.number().int(),
        alert_id: z.number().int(),
        check: z.string().openapi({ description: "The failing check, e.g. `freshness:updated_at`" }),
        check_kind: z.string(),
        status: z.string().openapi({ description: "open, acknowledged, muted or resolving" }),
        since: z.string().nullable().openapi({ description: "When the alert opened (ISO 8601)" }),
        detail: z.string().nullable().openapi({ description: "The check's last message" }),
      })
      .openapi("TableAlert"),
  )
  .openapi({
    description:
      "Open monitoring alerts on the tables the statement read (empty when none): the data may be stale, incomplete or malformed. Up to 5 s behind an alert opened or resolved elsewhere.",
  });
