// Builds the connection target of a saved (or about to be saved) connection: opens the sealed
// password, resolves SQLite names inside SQLITE_ROOT, and sends server dialects through the
// target gate (the network policy and Pulse's own servers, checked at every connect).

import path from "node:path";

import { openingKeys, openSecret } from "../auth/secrets.js";
import type { Config } from "../config.js";
import { invalidFields } from "../errors.js";
import { generatedSecretsFile } from "../generated-secrets.js";
import { canonicalHost } from "../net/resolve.js";
import { resolveSqlitePath } from "./sqlite-path.js";
import type { TargetGate } from "./target-gate.js";
import type { ConnectionTarget, Dialect } from "./types.js";

/** What a saved connection says; the target adds what config and the file system decide. */
export type ConnectionSpec = Omit<ConnectionTarget, "connectTimeoutMs" | "filePath" | "gate">;

/** The context a connection's password is sealed under: its owner. */
export const sealContext = (ownerId: number) => `db_connection:owner:${ownerId}`;

/** The fields a server dialect needs that a connection leaves empty (SQLite names only a file). */
export function missingServerFields(dialect: string, fields: { host?: string | undefined; username?: string | undefined }): ("host" | "username")[] {
  return dialect === "sqlite" ? [] : (["host", "username"] as const).filter((field) => !fields[field]);
}

/** MySQL/MariaDB schemas no connection may make its default database. */
const MYSQL_CONNECTION_SCHEMAS = new Set(["information_schema", "performance_schema"]);

export function targetFor({ config, targetGate }: { config: Config; targetGate: TargetGate }, spec: ConnectionSpec): ConnectionTarget {
  const target: ConnectionTarget = { ...spec, connectTimeoutMs: config.connectTimeoutMs };
  if (spec.dialect === "sqlite") {
    target.filePath = resolveSqlitePath(config.sqliteRoot, spec.database, [
      path.join(config.dataDir, "pglite"),
      generatedSecretsFile(config.dataDir),
    ]);
    return target;
  }
  // They travel in the server's handshake: a line break there could start a command in a
  // server of another protocol (Redis reads lines).
  for (const [field, value] of [["username", spec.username], ["database_name", spec.database]] as const) {
    if (/\p{Cc}/u.test(value)) throw invalidField(field, "must not contain control characters");
  }
  // Unqualified, their tables read the connection's own state (session_status: what earlier
  // statements left), which the guard refuses only when a table is named with its schema.
  if (spec.dialect === "mysql" && MYSQL_CONNECTION_SCHEMAS.has(spec.database.toLowerCase())) {
    throw invalidField("database_name", `${spec.database} is the server's catalog, not a database of yours: connect to one of yours (the catalog stays readable as ${spec.database}.<table>)`);
  }
  if (canonicalHost(spec.host) === null) {
    throw invalidField("host", `"${spec.host.slice(0, 300)}" is not a host name or an IP address (no port, path or scheme: the port goes in port)`);
  }
  target.gate = targetGate;
  return target;
}

/** The columns of a saved connection's row that say where it reaches. */
interface SavedRow {
  ownerId: number;
  dbType: Dialect;
  host: string;
  port: number;
  databaseName: string;
  username: string;
  passwordSealed: string;
  ssl: boolean;
}

const invalidField = (field: string, message: string) => invalidFields([{ path: `body.${field}`, message }]);

export function specOfRow(config: Config, row: SavedRow): ConnectionSpec {
  return { ...placeOfRow(row), password: openSecret(row.passwordSealed, openingKeys(config), sealContext(row.ownerId)) };
}

/** Where a saved connection reaches, without opening its password: for what only needs to know
 * which database it is (a target key), so the secret is not opened for nothing. */
export function placeOfRow(row: SavedRow): Omit<ConnectionSpec, "password"> {
  return { dialect: row.dbType, host: row.host, port: row.port, database: row.databaseName, username: row.username, ssl: row.ssl };
}
