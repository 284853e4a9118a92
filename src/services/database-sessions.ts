// Database sessions (seed 004): connect a session to one of the user's databases, report its
// state, and disconnect it. The session hash caches the schema but never a credential.

import { countConnectionAttempt } from "../connectors/connect-failures.js";
import { connectorFor } from "../connectors/saved-connection.js";
import { namingOf, renderTable } from "../connectors/schema-text.js";
import { specOfRow } from "../connectors/targets.js";
import type { SchemaSnapshot } from "../connectors/types.js";
import type { Deps } from "../deps.js";
import { notFound } from "../errors.js";
import type { SessionRecord } from "../sessions/types.js";
import { getConnection } from "../store/connections.js";
import type { DbConnectionRow } from "../store/schema.js";
import { sessionOf } from "./database-access.js";

/** Bytes (UTF-8) of the schema a session keeps (`db_schema`, seed 004's cached schema). Every
 * session holds its own copy in Redis, and a user may open many: a large schema's text whole in
 * each would let one user fill Redis. Bytes, not characters: names in CJK scripts take three
 * bytes a character, and a cap of characters kept three times as much. The agent reads the
 * connector's schema, not this. */
export const SESSION_SCHEMA_BYTES = 16_000;

/** The schema as the session keeps it: whole tables, as many as fit in SESSION_SCHEMA_BYTES,
 * then how many were left out and where they are. */
export function sessionSchemaText(schema: SchemaSnapshot, connectionId: number): string {
  const naming = namingOf(schema);
  const lines: string[] = [];
  let bytes = 0;
  for (const [i, table] of schema.tables.entries()) {
    const line = renderTable(table, naming);
    const size = Buffer.byteLength(line);
    if (bytes + size > SESSION_SCHEMA_BYTES) {
      lines.push(`-- ${schema.tables.length - i} more tables: GET /databases/${connectionId}/schema has them all`);
      break;
    }
    lines.push(line);
    bytes += size + 1;
  }
  return lines.join("\n");
}

export async function connectSession(deps: Deps, userId: number, sessionId: string, connectionId: number) {
  // The row before its connector: a PUT between the two leaves the session the connection string
  // it had, which session-info then finds is not the connection's any more (no schema shown),
  // rather than the old database's schema beside the new connection string.
  const row = await getConnection(deps.store.db, userId, connectionId);
  if (!row) throw notFound("Database connection");
  const connector = await connectorFor(deps, userId, connectionId);
  // Read now, not the schema cached since the connector opened: connecting is when a user
  // expects the database as it is (and to hear that it is gone, if it is).
  const schema = await connector.refreshSchema().catch(async (err: unknown) => {
    // Deleted while its schema was read (its connector closed under the read): gone, not failed.
    if (!(await getConnection(deps.store.db, userId, connectionId))) throw notFound("Database connection");
    throw err;
  });
  await deps.connectors.schemaReadAnew(connectionId);
  await deps.sessions.update(
    sessionId,
    userId,
    {
      status: "connected",
      db_id: connectionId,
      connected_at: Math.floor(Date.now() / 1000),
      db_schema: sessionSchemaText(schema, connectionId),
      connection_string: shownConnectionString(deps, row),
    },
    deps.config.sessionTtlSeconds,
  );
  return {
    message: "Database connection successful and tools updated",
    session_id: sessionId,
    thread_id: sessionId,
    db_id: connectionId,
    database_name: row.databaseName,
    user_id: userId,
    tables: schema.tables.length,
  };
}

/** The session's connection, while the session is connected and the connection exists. A
 * deleted connection leaves the records of the sessions connected to it as they were (they are
 * not indexed by connection): such a session is not connected to anything, whatever its record
 * says, as /query answers it (404, connect another). */
async function connectionOf(deps: Deps, userId: number, session: SessionRecord): Promise<DbConnectionRow | null> {
  if (session.status !== "connected" || session.db_id === null) return null;
  return (await getConnection(deps.store.db, userId, session.db_id)) ?? null;
}

export async function sessionStatus(deps: Deps, userId: number, sessionId: string) {
  const row = await connectionOf(deps, userId, await sessionOf(deps, userId, sessionId, sessionId));
  return {
    user_id: userId,
    session_id: sessionId,
    thread_id: sessionId,
    database_connected: row !== null,
    db_id: row?.id ?? null,
  };
}

/** postgresql://user:***@host:port/db: what the session is connected to, password masked.
 * Without a password there is nothing to mask, and `***` would claim there is one. */
export function maskedConnectionString(row: DbConnectionRow, hasPassword: boolean): string {
  if (row.dbType === "sqlite") return `sqlite:///${row.databaseName}`;
  const user = encodeURIComponent(row.username) + (hasPassword ? ":***" : "");
  return `${row.dbType}://${user}@${row.host}:${row.port}/${encodeURIComponent(row.databaseName)}`;
}

const shownConnectionString = (deps: Deps, row: DbConnectionRow) => maskedConnectionString(row, specOfRow(deps.config, row).password !== "");

const isoOfEpochSeconds = (seconds: number) => new Date(seconds * 1000).toISOString();

export async function sessionInfo(deps: Deps, userId: number, tokenSessionId: string, sessionId: string) {
  const session = await sessionOf(deps, userId, sessionId, tokenSessionId, { withSchema: true });
  const row = await connectionOf(deps, userId, session);
  const connectionString = row ? shownConnectionString(deps, row) : null;
  const sessionData = {
    connection_string: connectionString,
    created_at: isoOfEpochSeconds(session.created_at),
    status: row ? session.status : "idle",
    db_id: row?.id ?? null,
    // The schema cached at connect_db, while the connection still reaches what it reached then
    // (a PUT since may have moved it to another database: connect_db again caches that one's).
    // A session connected before this was recorded shows its schema as before.
    db_schema: row && (session.connection_string ?? connectionString) === connectionString ? session.db_schema : null,
  };
  return {
    session_id: sessionId,
    thread_id: sessionId,
    user_id: userId,
    database_connected: row !== null,
    session_data: sessionData,
    // Seed 004's name, kept for its clients whatever the session store is.
    redis_data: sessionData,
    db_session_created_at: row && session.connected_at !== null ? isoOfEpochSeconds(session.connected_at) : null,
  };
}

export async function disconnectSession(deps: Deps, userId: number, sessionId: string) {
  const session = await sessionOf(deps, userId, sessionId, sessionId);
  const removed = await deps.sessions.delete(sessionId);
  if (session.db_id !== null) await deps.connectors.evict(session.db_id);
  return {
    message: "Session disconnected successfully",
    session_id: sessionId,
    thread_id: sessionId,
    user_id: userId,
    session_removed: removed,
    // Seed 004's name for the same answer, whatever the session store is.
    redis_cleanup: removed,
  };
}

/** The connection's schema as its JSON answer (kept with the schema: see schemaJson). */
export async function schemaJsonOf(deps: Deps, userId: number, connectionId: number, refresh = false): Promise<Uint8Array<ArrayBuffer>> {
  const connector = await connectorFor(deps, userId, connectionId);
  if (!refresh) return connector.schemaJson(await connector.schema());
  await countConnectionAttempt(deps, userId);
  const schema = await connector.refreshSchema();
  await deps.connectors.schemaReadAnew(connectionId);
  return connector.schemaJson(schema);
}

export async function requireOwnConnection(deps: Deps, userId: number, connectionId: number) {
  if (!(await getConnection(deps.store.db, userId, connectionId))) throw notFound("Database connection");
}
