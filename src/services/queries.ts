// Direct SQL (seed 000): one read-only statement through the user's guarded connector, on a
// given connection or the session's connected one, with the open alerts on the tables it read.

import type { Grant } from "../auth/grants.js";
import type { QueryResult } from "../connectors/types.js";
import type { Deps } from "../deps.js";
import { connectedDb, sessionOf, workingConnector } from "./database-access.js";
import { alertsOnTablesRead, type TableAlert } from "./table-health.js";

export interface QueryRequest {
  sql: string;
  /** The credential's: which connections' alerts the answer's health may show, and the API key
   * (if it is one) the audit trail records. */
  grant: Grant;
  connectionId?: number | undefined;
  /** The session whose database to use when no connection is named (default: the token's). */
  sessionId?: string | undefined;
  maxRows?: number | undefined;
  timeoutMs?: number | undefined;
  /** Aborted when the client goes away: the statement is stopped at the database. */
  signal?: AbortSignal | undefined;
}

export interface QueryAnswer {
  result: QueryResult;
  /** Open monitoring alerts on the tables the statement read. */
  health: TableAlert[];
  connectionId: number;
}

export async function runQuery(deps: Deps, userId: number, tokenSessionId: string, request: QueryRequest): Promise<QueryAnswer> {
  let connectionId = request.connectionId;
  if (connectionId === undefined) {
    const session = await sessionOf(deps, userId, request.sessionId ?? tokenSessionId, tokenSessionId);
    connectionId = connectedDb(session);
  }
  const connector = await workingConnector(deps, userId, connectionId, request.connectionId === undefined);
  const result = await connector.query(request.sql, { maxRows: request.maxRows, timeoutMs: request.timeoutMs, source: "query", apiKeyId: request.grant.apiKeyId, signal: request.signal });
  const health = await alertsOnTablesRead(deps, userId, request.grant, connector, [request.sql]);
  return { result, health, connectionId };
}
