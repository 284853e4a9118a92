// Direct SQL (seed 000): one read-only statement through the user's guarded connector, on a
// given connection or the session's connected one.

import { connectorFor } from "../connectors/saved-connection.js";
import type { QueryResult } from "../connectors/types.js";
import type { Deps } from "../deps.js";
import { connectedDb, sessionOf } from "./database-access.js";

export interface QueryRequest {
  sql: string;
  connectionId?: number | undefined;
  /** The session whose database to use when no connection is named (default: the token's). */
  sessionId?: string | undefined;
  maxRows?: number | undefined;
  timeoutMs?: number | undefined;
}

export async function runQuery(deps: Deps, userId: number, tokenSessionId: string, request: QueryRequest): Promise<QueryResult> {
  let connectionId = request.connectionId;
  if (connectionId === undefined) {
    const session = await sessionOf(deps, userId, request.sessionId ?? tokenSessionId, tokenSessionId);
    connectionId = connectedDb(session);
  }
  const connector = await connectorFor(deps, userId, connectionId);
  return connector.query(request.sql, { maxRows: request.maxRows, timeoutMs: request.timeoutMs, source: "query" });
}
