// Connection registry verbs. A connection is proven by connecting before it is saved; its
// password is sealed at rest and never leaves this module in a response.

import { sealSecret } from "../auth/secrets.js";
import { countConnectionAttempt } from "../connectors/connect-failures.js";
import { openDriver } from "../connectors/open.js";
import { savedTarget } from "../connectors/saved-connection.js";
import { checkSqliteName } from "../connectors/sqlite-path.js";
import { missingServerFields, sealContext, specOfRow, targetFor, type ConnectionSpec } from "../connectors/targets.js";
import type { ConnectionTarget, Dialect, ProbeInfo } from "../connectors/types.js";
import type { Deps } from "../deps.js";
import { changedMeanwhile, invalidFields, notFound } from "../errors.js";
import { removeWithAlerts } from "../monitoring/alerts.js";
import {
  deleteConnection,
  getConnection,
  insertConnection,
  listConnections,
  updateConnection,
  type ConnectionPatch,
} from "../store/connections.js";
import { lockAlertsOfTables } from "../store/monitoring-alerts.js";
import { lockMonitoredTablesOfConnection } from "../store/monitoring-tables.js";
import type { DbConnectionRow } from "../store/schema.js";
import { assertUnderQuota, insertWithinQuota } from "../store/quotas.js";

export interface ConnectionInput {
  name?: string | undefined;
  db_type: Dialect;
  host?: string | undefined;
  port?: number | undefined;
  database_name: string;
  username?: string | undefined;
  db_password?: string | undefined;
  ssl?: boolean | undefined;
}

export type ConnectionUpdate = Partial<ConnectionInput>;

export interface PublicConnection {
  id: number;
  name: string;
  db_type: Dialect;
  host: string;
  port: number;
  database_name: string;
  username: string;
  ssl: boolean;
  owner_id: number;
  created_at: string;
  updated_at: string;
}

export const publicConnection = (row: DbConnectionRow): PublicConnection => ({
  id: row.id,
  name: row.name,
  db_type: row.dbType,
  host: row.host,
  port: row.port,
  database_name: row.databaseName,
  username: row.username,
  ssl: row.ssl,
  owner_id: row.ownerId,
  created_at: row.createdAt.toISOString(),
  updated_at: row.updatedAt.toISOString(),
});

const DEFAULT_PORTS: Record<Dialect, number> = { postgresql: 5432, mysql: 3306, sqlite: 0 };

const SERVER_ONLY_FIELDS = ["host", "port", "username", "db_password", "ssl"] as const;

/** Fields only a server takes, sent for a SQLite connection: refused rather than dropped
 * (`ssl: true` was stored as false without a word). Empty values, as forms send, pass. */
function refuseServerFieldsForSqlite(dialect: Dialect, sent: ConnectionUpdate): void {
  if (dialect !== "sqlite") return;
  const given = SERVER_ONLY_FIELDS.filter((field) => sent[field] !== undefined && sent[field] !== "" && sent[field] !== false);
  const message = "not taken for sqlite: a SQLite connection names only a file, in database_name";
  if (given.length > 0) throw invalidFields(given.map((field) => ({ path: `body.${field}`, message })));
}

function specOfInput(input: ConnectionInput): ConnectionSpec {
  const sqlite = input.db_type === "sqlite";
  if (sqlite) checkSqliteName(input.database_name);
  return {
    dialect: input.db_type,
    host: sqlite ? "" : (input.host ?? ""),
    port: sqlite ? 0 : (input.port ?? DEFAULT_PORTS[input.db_type]),
    database: input.database_name,
    username: sqlite ? "" : (input.username ?? ""),
    password: sqlite ? "" : (input.db_password ?? ""),
    ssl: sqlite ? false : (input.ssl ?? false),
  };
}

/** Connects once with the given settings and reports what the server said. */
async function probeTarget(deps: Deps, ownerId: number, target: ConnectionTarget): Promise<ProbeInfo> {
  await countConnectionAttempt(deps, ownerId);
  const driver = await openDriver(target, { maxConnections: 1, idleTimeoutMs: 1000 });
  try {
    return await driver.probe();
  } finally {
    await driver.close();
  }
}

function rowValues(ownerId: number, spec: ConnectionSpec, deps: Deps) {
  return {
    dbType: spec.dialect,
    host: spec.host,
    port: spec.port,
    databaseName: spec.database,
    username: spec.username,
    passwordSealed: sealSecret(spec.password, deps.config.secretsKey, sealContext(ownerId)),
    ssl: spec.ssl,
  };
}

export async function addConnection(deps: Deps, ownerId: number, input: ConnectionInput): Promise<PublicConnection> {
  refuseServerFieldsForSqlite(input.db_type, input);
  const spec = specOfInput(input);
  await assertUnderQuota(deps.store.db, deps.config.quotas, ownerId, "connections");
  await probeTarget(deps, ownerId, targetFor(deps, spec));
  const row = await insertWithinQuota(deps.store.db, deps.config.quotas, ownerId, "connections", (tx) =>
    insertConnection(tx, {
      ownerId,
      name: input.name ?? `${input.db_type}:${input.database_name}`,
      ...rowValues(ownerId, spec, deps),
    }),
  );
  return publicConnection(row);
}

export async function listConnectionsOf(deps: Deps, ownerId: number): Promise<PublicConnection[]> {
  return (await listConnections(deps.store.db, ownerId)).map(publicConnection);
}

async function ownedRow(deps: Deps, ownerId: number, id: number): Promise<DbConnectionRow> {
  const row = await getConnection(deps.store.db, ownerId, id);
  if (!row) throw notFound("Database connection");
  return row;
}

export async function getConnectionOf(deps: Deps, ownerId: number, id: number): Promise<PublicConnection> {
  return publicConnection(await ownedRow(deps, ownerId, id));
}

const CONNECTION_FIELDS = ["db_type", "host", "port", "database_name", "username", "db_password", "ssl"] as const;

/**
 * The stored password is only ever sent where it was proven to work: a change of server
 * (dialect, host, port), of user, or from TLS to plaintext needs the password in the same
 * request, else whoever holds a token could point the connection at a server of theirs that
 * asks for the password in clear. A new database on the same server is not a new recipient.
 */
function requirePasswordToMove(current: ConnectionSpec, next: ConnectionSpec) {
  if (next.dialect === "sqlite" || current.password === "") return;
  const moved = [
    next.dialect !== current.dialect && "db_type",
    next.host !== current.host && "host",
    next.port !== current.port && "port",
    next.username !== current.username && "username",
    current.ssl && !next.ssl && "ssl",
  ].filter((field) => field !== false);
  if (moved.length === 0) return;
  const message = `required when changing ${moved.join(", ")}: the stored password is only sent to the server it was saved for`;
  throw invalidFields([{ path: "body.db_password", message }]);
}

export async function updateConnectionOf(
  deps: Deps,
  ownerId: number,
  id: number,
  update: ConnectionUpdate,
): Promise<PublicConnection> {
  const row = await ownedRow(deps, ownerId, id);
  const patch: ConnectionPatch = {};
  if (update.name !== undefined) patch.name = update.name;
  if (CONNECTION_FIELDS.some((field) => update[field] !== undefined)) {
    const current = specOfRow(deps.config, row);
    const spec = specOfInput({
      db_type: update.db_type ?? current.dialect,
      host: update.host ?? current.host,
      port: update.port ?? (update.db_type && update.db_type !== current.dialect ? undefined : current.port),
      database_name: update.database_name ?? current.database,
      username: update.username ?? current.username,
      db_password: update.db_password ?? current.password,
      ssl: update.ssl ?? current.ssl,
    });
    // A move from SQLite to a server dialect must bring what SQLite never had (else the
    // server's own refusal, "Access denied for user ''", would be the answer).
    refuseServerFieldsForSqlite(spec.dialect, update);
    const missing = missingServerFields(spec.dialect, spec);
    if (missing.length > 0) throw invalidFields(missing.map((field) => ({ path: `body.${field}`, message: `required for ${spec.dialect}` })));
    if (update.db_password === undefined) requirePasswordToMove(current, spec);
    await probeTarget(deps, ownerId, targetFor(deps, spec));
    Object.assign(patch, rowValues(ownerId, spec, deps));
  }
  if (Object.keys(patch).length === 0) return publicConnection(row);
  const updated = await updateConnection(deps.store.db, ownerId, id, patch, row.updatedAt);
  if (updated === "changed") throw changedMeanwhile(`Database connection ${id}`);
  if (!updated) throw notFound("Database connection");
  // The cached pool still holds the old settings.
  await deps.connectors.evict(id);
  return publicConnection(updated);
}

export async function removeConnection(deps: Deps, ownerId: number, id: number): Promise<void> {
  // Its monitored tables go with it (the store's cascade), and so do their alerts.
  const removed = await removeWithAlerts(deps, async (tx) => {
    // Its tables' rows first, as a run locks them (then their alerts).
    const tables = await lockMonitoredTablesOfConnection(tx, ownerId, id);
    const doomed = tables.length > 0 ? await lockAlertsOfTables(tx, ownerId, { connectionId: id }) : [];
    return { doomed, by: "its connection being deleted", remove: () => deleteConnection(tx, ownerId, id) };
  });
  if (!removed) throw notFound("Database connection");
  await deps.connectors.evict(id);
}

export async function testConnection(deps: Deps, ownerId: number, id: number): Promise<{ ok: true } & ProbeInfo> {
  const row = await ownedRow(deps, ownerId, id);
  return { ok: true, ...(await probeTarget(deps, ownerId, savedTarget(deps, row))) };
}
