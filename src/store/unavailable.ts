// Which failures of the metadata store mean "unreachable" (503 store_unavailable, retry later)
// rather than a bug (500): lost or refused connections, a server shutting down, a full pool.

import { DomainError } from "../errors.js";

/** SQLSTATEs of a store that cannot serve Pulse now, though Pulse asked nothing wrong:
 * connection exceptions (class 08); shutdown, cannot-connect-now, database dropped, an idle
 * session ended (57P01-05); a statement cancelled, as the pool's statement_timeout does (57014); out of resources
 * (class 53: disk full, out of memory, too many connections); system errors (class 58: I/O); a
 * read-only server (25006: failed over to a standby); a lock or serialization conflict that a
 * retry resolves (55P03, 40001, 40P01). */
const UNAVAILABLE_SQLSTATE = /^(08...|57P0[1-5]|57014|53...|58...|25006|55P03|40001|40P01)$/;
const UNAVAILABLE_ERRNO = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH"]);
/** node-postgres reports these as plain Errors without a code (a read timeout: a query to a
 * store gone silent, see client.ts's query_timeout). */
const UNAVAILABLE_MESSAGE = /Connection terminated|timeout exceeded when trying to connect|Query read timeout|not queryable|Client was closed|Cannot use a pool after calling end|PGlite is closed/i;

function isUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string" && (UNAVAILABLE_SQLSTATE.test(code) || UNAVAILABLE_ERRNO.has(code))) return true;
  return UNAVAILABLE_MESSAGE.test(err.message);
}

/** The error, or its cause (Drizzle wraps driver errors in "Failed query: ..."). */
export function isStoreUnavailable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof DomainError) return false;
    if (isUnavailable(e)) return true;
  }
  return false;
}

/** PostgreSQL's error classes (not an errno such as EPIPE, which is as long). */
const SQLSTATE = /^([0-5][0-9A-Z]|F0|HV|P0|XX)[0-9A-Z]{3}$/;

interface StoreError {
  code: string;
  /** The constraint violated, where the error is a constraint's. */
  constraint?: string;
}

/** The store's own error, the error or its cause; undefined for a failure with none (a lost
 * connection, a timeout). */
function storeErrorOf(err: unknown): StoreError | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && SQLSTATE.test(code)) return e as StoreError;
  }
  return undefined;
}

/** The SQLSTATE the store answered with. */
export const sqlStateOf = (err: unknown): string | undefined => storeErrorOf(err)?.code;

/** Whether the store refused a write on the foreign key `constraint` (any, when not named):
 * what it refers to was deleted meanwhile. */
export function violatesForeignKey(err: unknown, constraint?: string): boolean {
  const e = storeErrorOf(err);
  return e?.code === "23503" && (constraint === undefined || e.constraint === constraint);
}

export const storeUnavailable = () =>
  new DomainError("store_unavailable", "Pulse's metadata store is unavailable or did not answer in time; retry shortly");
