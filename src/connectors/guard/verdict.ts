// The guard's answer and the sentences it refuses with. Reasons are shown to users and fed
// back to the agent, so each one says what was refused and why, in words it can act on.

export type ReadKind = "select" | "explain" | "show" | "describe" | "pragma";

export type GuardRule =
  | "empty"
  | "too_large"
  | "too_deeply_nested"
  | "parse_timeout"
  | "parse_error"
  | "multiple_statements"
  | "not_read_only"
  | "data_modifying_cte"
  | "select_into"
  | "locking_clause"
  | "into_outfile"
  | "transaction_control"
  | "session_control"
  | "dangerous_function"
  | "explain_analyze_write"
  | "executable_comment"
  | "ambiguous_lexing"
  | "pragma_not_allowed"
  | "unsupported_statement"
  | "guard_error";

export type GuardVerdict = { ok: true; kind: ReadKind } | { ok: false; rule: GuardRule; reason: string };

export type Refusal = Extract<GuardVerdict, { ok: false }>;

/** The default of QUERY_MAX_SQL_CHARS: no hand- or agent-written question needs more, and a
 * PEG parse of this much can take a second (in a worker thread: see statement-guard.ts). */
export const MAX_STATEMENT_LENGTH = 100_000;

const ALLOWED = "only a single read (SELECT, WITH, VALUES, EXPLAIN, SHOW/DESCRIBE) is allowed";

export function accept(kind: ReadKind): GuardVerdict {
  return { ok: true, kind };
}

export function refuse(rule: GuardRule, reason: string): Refusal {
  return { ok: false, rule, reason };
}

export function refuseEmpty(): Refusal {
  return refuse("empty", `The statement is empty (only whitespace or comments); ${ALLOWED}.`);
}

export function refuseTooLarge(length: number, limit: number): Refusal {
  return refuse("too_large", `The statement is ${length} characters long; statements longer than ${limit} characters are refused.`);
}

export function refuseTooDeeplyNested(depth: number, limit: number): Refusal {
  return refuse("too_deeply_nested", `The statement nests parentheses ${depth} deep; more than ${limit} are refused unparsed (they cost the parser seconds). Flatten it: a CTE (WITH) or fewer redundant parentheses.`);
}

export function refuseParseTimeout(timeoutMs: number): Refusal {
  return refuse(
    "parse_timeout",
    `The statement could not be analysed within ${timeoutMs} ms, so it was refused; long or deeply nested statements cost the guard the most, so shorten or simplify it.`,
  );
}

export function refuseMultiple(count: number): Refusal {
  return refuse(
    "multiple_statements",
    `Found ${count} statements; exactly one statement per request is allowed (a trailing semicolon is fine).`,
  );
}

export function refuseWrite(label: string): Refusal {
  return refuse("not_read_only", `${label} is not a read; ${ALLOWED}.`);
}

export function refuseCteWrite(label: string): Refusal {
  return refuse(
    "data_modifying_cte",
    `The statement contains a data-modifying ${label} (in a WITH clause or subquery); ${ALLOWED}.`,
  );
}

export function refuseTransaction(label: string): Refusal {
  return refuse(
    "transaction_control",
    `${label} controls the transaction, which the service manages itself; ${ALLOWED}.`,
  );
}

/** A read of what earlier statements left on the connection (MySQL's diagnostics area, the
 * session's counters): Pulse's pooled connections carry other statements between a user's,
 * other users' among them, so it would show one user another's literals, values and names. */
export function refuseLeftByEarlier(what: string, instead: string): Refusal {
  return refuse(
    "session_control",
    `${what} reads what earlier statements left on the connection, which Pulse shares between statements (and users): it would not describe yours. ${instead}`,
  );
}

export function refuseSession(label: string): Refusal {
  return refuse(
    "session_control",
    `${label} changes session state that would outlive this query; ${ALLOWED}.`,
  );
}

export function refuseLocking(label: string): Refusal {
  return refuse("locking_clause", `SELECT ... ${label} takes row locks that block writers; only plain reads are allowed.`);
}

export function refuseDangerousFunction(name: string, why: string): Refusal {
  return refuse("dangerous_function", `${name}() is refused: ${why}.`);
}

export function refuseDangerousRelation(name: string, why: string): Refusal {
  return refuse("dangerous_function", `The ${name} virtual table is refused: ${why}.`);
}

export function refuseExplainAnalyzeWrite(label: string): Refusal {
  return refuse(
    "explain_analyze_write",
    `EXPLAIN ANALYZE executes the ${label} it measures; only reads may be analysed (plain EXPLAIN only plans).`,
  );
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
