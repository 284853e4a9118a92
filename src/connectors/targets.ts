// Builds the connection target of a saved (or about to be saved) connection: opens the sealed
// password and resolves SQLite names inside SQLITE_ROOT.

import path from "node:path";

import { openSecret } from "../auth/secrets.js";
import type { Config } from "../config.js";
import { DomainError } from "../errors.js";
import { resolveSqlitePath } from "./sqlite-path.js";
import type { ConnectionTarget, Dialect } from "./types.js";

/** What a saved connection says; the target adds what config and the file system decide. */
export type ConnectionSpec = Omit<ConnectionTarget, "connectTimeoutMs" | "filePath">;

/** The context a connection's password is sealed under: its owner. */
export const sealContext = (ownerId: number) => `db_connection:owner:${ownerId}`;

export function targetFor(config: Config, spec: ConnectionSpec): ConnectionTarget {
  const target: ConnectionTarget = { ...spec, connectTimeoutMs: config.connectTimeoutMs };
  if (spec.dialect === "sqlite") {
    target.filePath = resolveSqlitePath(config.sqliteRoot, spec.database, [
      path.join(config.dataDir, "pglite"),
      path.join(config.dataDir, "secrets.json"),
    ]);
  } else if (isMetadataStore(config, spec)) {
    throw new DomainError("forbidden", "This connection points at Pulse's own metadata database");
  }
  return target;
}

export function specOfRow(
  config: Config,
  row: {
    ownerId: number;
    dbType: Dialect;
    host: string;
    port: number;
    databaseName: string;
    username: string;
    passwordSealed: string;
    ssl: boolean;
  },
): ConnectionSpec {
  return {
    dialect: row.dbType,
    host: row.host,
    port: row.port,
    database: row.databaseName,
    username: row.username,
    password: openSecret(row.passwordSealed, config.secretsKey, sealContext(row.ownerId)),
    ssl: row.ssl,
  };
}

const LOOPBACK = new Set(["localhost", "127.0.0.1", "::1", "[::1]"]);

function isMetadataStore(config: Config, spec: ConnectionSpec): boolean {
  if (!config.databaseUrl || spec.dialect !== "postgresql") return false;
  const url = new URL(config.databaseUrl);
  const sameHost = url.hostname === spec.host || (LOOPBACK.has(url.hostname) && LOOPBACK.has(spec.host));
  return sameHost && Number(url.port || 5432) === spec.port && decodeURIComponent(url.pathname.slice(1)) === spec.database;
}
