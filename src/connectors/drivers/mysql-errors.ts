// How MySQL/MariaDB failures become domain errors: timeouts, connection problems (with clear
// messages and never the password) and statement errors with the server's own message.

import { DomainError } from "../../errors.js";
import type { ConnectionTarget } from "../types.js";
import { driverMessage } from "./driver-message.js";

interface MysqlError {
  code?: string;
  errno?: number;
  sqlState?: string;
  sqlMessage?: string;
  message: string;
  fatal?: boolean;
}

/** The connection can not be used again: mysql2 marked the error fatal, or its client-side
 * timeout fired (which leaves the command hanging on the connection). */
export function isFatal(err: unknown): boolean {
  const e = err as MysqlError;
  return Boolean(e?.fatal) || e?.code === "PROTOCOL_SEQUENCE_TIMEOUT" || (e?.errno !== undefined && SESSION_ENDED_ERRNOS.has(e.errno));
}

/** The server ended the session, not just the statement (it closes the socket next). */
const SESSION_ENDED_ERRNOS = new Set([1053 /* server shutdown */, 1927 /* connection killed */]);

/** A connection that worked broke under a statement: KILL, a restart, a network cut. */
function connectionLost(e: MysqlError): boolean {
  return e.code !== "PROTOCOL_SEQUENCE_TIMEOUT" && isFatal(e);
}

/** The client lost the connection on its side (a network cut, a proxy that dropped it), with
 * no word from the server that the session ended: the server may be running the statement on.
 * Not the client-side timeout, which fires past the server's own. */
export function cutUnderClient(err: unknown): boolean {
  const e = err as MysqlError;
  return connectionLost(e) && e.sqlState === undefined;
}

const TIMEOUT_ERRNOS = new Set([1969 /* MariaDB max_statement_time */, 3024 /* MySQL max_execution_time */]);
const CONNECTION_ERRNOS = new Set([1044, 1045, 1049, 1040, 1129, 1130, 1203, 1226, 1251]);

/** `duringStatement`: the connection was established, so losing it is connection_lost (502),
 * not a failure to connect (connection_failed). */
export function toDomainError(err: unknown, target: ConnectionTarget, where: string, timeoutMs: number, duringStatement = false): DomainError {
  if (err instanceof DomainError) return err;
  const e = err as MysqlError;
  const message = driverMessage(e.sqlMessage ?? e.message ?? String(err), target);
  if (duringStatement && connectionLost(e)) {
    return new DomainError("connection_lost", `The connection to ${where} was lost during the statement: ${message}`);
  }
  if (e.errno !== undefined && TIMEOUT_ERRNOS.has(e.errno)) {
    return new DomainError("query_timeout", `The query ran longer than ${timeoutMs} ms and was stopped by the database`, {
      timeout_ms: timeoutMs,
    });
  }
  if (e.code === "PROTOCOL_SEQUENCE_TIMEOUT") {
    return new DomainError("query_timeout", `The database did not answer within ${timeoutMs} ms`, { timeout_ms: timeoutMs });
  }
  // Only while connecting: once connected, the server answers 1045 to a statement too (MariaDB,
  // to a non-SUPER login reading a view whose DEFINER was dropped). That is the statement's
  // failure; taken for one to connect, it counted towards CONNECTION_TESTS_PER_MINUTE and locked
  // the saved connection out (connect-failures.ts), and monitoring retried it as unreachable.
  if (!duringStatement && e.errno !== undefined && CONNECTION_ERRNOS.has(e.errno)) return new DomainError("connection_failed", message);
  if (e.errno !== undefined && e.sqlState) {
    return new DomainError("sql_failed", message, { errno: e.errno, sqlstate: e.sqlState });
  }
  switch (e.code) {
    case "ETIMEDOUT":
      return new DomainError("connection_failed", `could not connect to ${where} within ${target.connectTimeoutMs} ms`);
    case "ECONNREFUSED":
      return new DomainError("connection_failed", `could not connect to ${where}: connection refused`);
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return new DomainError("connection_failed", `could not resolve host "${target.host}"`);
    case "PROTOCOL_CONNECTION_LOST":
    case "ECONNRESET":
      return new DomainError("connection_failed", `the connection to ${where} was closed by the server`);
    default:
      return new DomainError("connection_failed", message);
  }
}
