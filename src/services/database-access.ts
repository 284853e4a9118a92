// Which database a user is working with: the session that says which of their connections it
// is (the connector itself comes from connectors/saved-connection.ts).

import type { GuardedConnector } from "../connectors/guarded.js";
import { connectorFor } from "../connectors/saved-connection.js";
import type { Deps } from "../deps.js";
import { DomainError } from "../errors.js";
import type { SessionRecord } from "../sessions/types.js";

const SESSION_NOT_FOUND = "Session ID does not belong to the authenticated user or session not found";

/** A session of `userId` (seed 004's error otherwise). A missing record of the caller's own
 * token session is an idle session: it was disconnected or expired, and the token is valid. */
export async function sessionOf(
  deps: Deps,
  userId: number,
  sessionId: string,
  tokenSessionId: string,
  options: { withSchema?: boolean } = {},
): Promise<SessionRecord> {
  const record = await deps.sessions.get(sessionId, options);
  if (record) {
    if (record.user_id !== userId) throw new DomainError("not_found", SESSION_NOT_FOUND);
    return record;
  }
  if (sessionId !== tokenSessionId) throw new DomainError("not_found", SESSION_NOT_FOUND);
  return { session_id: sessionId, user_id: userId, created_at: Math.floor(Date.now() / 1000), status: "idle", db_id: null, connected_at: null, db_schema: null, connection_string: null };
}

/** The connection a session is connected to (seed 004's error when none). */
export function connectedDb(session: SessionRecord): number {
  if (session.status !== "connected" || session.db_id === null) {
    throw new DomainError("no_database_connected", "No database connected for this session. Please connect a database first.");
  }
  return session.db_id;
}

/** The connector of `connectionId`, of `userId`; `fromSession`: named by the caller's session,
 * whose connection deleted since is said as such, with what to do (a bare "not found" left the
 * caller to guess which). */
export async function workingConnector(deps: Deps, userId: number, connectionId: number, fromSession: boolean): Promise<GuardedConnector> {
  try {
    return await connectorFor(deps, userId, connectionId);
  } catch (err) {
    if (!fromSession || !(err instanceof DomainError) || err.code !== "not_found") throw err;
    throw new DomainError("not_found", `This session's database connection ${connectionId} no longer exists (it was deleted): connect another with POST /databases/connect_db/{id}`);
  }
}
