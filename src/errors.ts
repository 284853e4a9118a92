// Domain errors: services and connectors throw these, the HTTP edge maps `code` to a status
// (src/http/errors.ts). Anything else that escapes is unexpected and answers 500.

export type ErrorCode =
  | "invalid_input"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "conflict"
  /** The user keeps the most of something allowed (USER_MAX_*). */
  | "quota_exceeded"
  | "rate_limited"
  | "budget_exceeded"
  | "sql_refused"
  | "sql_failed"
  | "query_timeout"
  /** Its caller went away (a client that hung up, an /ask past its time): it was stopped. */
  | "query_cancelled"
  | "result_too_large"
  | "connection_failed"
  /** An established connection to a customer database broke under a statement. */
  | "connection_lost"
  | "no_database_connected"
  | "model_not_configured"
  | "model_failed"
  /** The model server answered 429, or asked to wait (Retry-After): passed on with the wait. */
  | "model_rate_limited"
  | "model_timeout"
  | "unavailable"
  /** The instance stops: the work of a request still running as its drain ends is stopped, and
   * the request answered with this rather than cut (src/serve.ts). */
  | "shutting_down"
  /** Pulse's own metadata store (PostgreSQL or PGlite) cannot be reached. */
  | "store_unavailable"
  /** Redis (sessions, rate limits, conversation memory) cannot be reached. */
  | "sessions_unavailable"
  /** The audit trail cannot keep more records (its store is unreachable): nothing runs unrecorded. */
  | "audit_unavailable";

export class DomainError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Extra fields for the response body (never secrets). */
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = "DomainError";
  }
}

export const notFound = (what: string) => new DomainError("not_found", `${what} not found`);

/** A change made from a row that another change has replaced since: saved, it would undo that
 * one (or stand on checks made against what is no longer there). */
export const changedMeanwhile = (what: string) =>
  new DomainError("conflict", `${what} was changed by another request while this change was checked; read it again and send this change anew`);

/** 422 for input a schema could not judge alone (it needed the database, the clock, another
 * field), with the errors list every invalid input carries. */
export const invalidFields = (issues: readonly { path: string; message: string }[]) =>
  new DomainError("invalid_input", `Invalid input: ${issues.map((i) => `${i.path}: ${i.message}`).join("; ")}`, { errors: [...issues] });

/** Refused before it reached the database; `rule` names the guard rule that refused it. */
export class SqlRefusedError extends DomainError {
  constructor(
    readonly rule: string,
    message: string,
  ) {
    super("sql_refused", message, { rule });
    this.name = "SqlRefusedError";
  }
}

/** Too many requests or queries; `retryAfterSeconds` becomes the Retry-After header. */
export class RateLimitedError extends DomainError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
    code: "rate_limited" | "budget_exceeded" = "rate_limited",
  ) {
    super(code, message, { retry_after_seconds: retryAfterSeconds });
    this.name = "RateLimitedError";
  }
}
