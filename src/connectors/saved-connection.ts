// The guarded connector of one of a user's saved connections: built once from its row and
// kept in the cache (cache.ts), its owner checked on every use. The verbs (services/) and the
// monitoring engine both reach customer databases through it.

import type { Config } from "../config.js";
import { DomainError, notFound } from "../errors.js";
import type { Store } from "../store/client.js";
import { getConnection } from "../store/connections.js";
import type { DbConnectionRow } from "../store/schema.js";
import type { ConnectorCache } from "./cache.js";
import type { GuardedConnector } from "./guarded.js";
import type { TargetGate } from "./target-gate.js";
import { targetKey } from "./target-key.js";
import type { ConnectionTarget } from "./types.js";
import { placeOfRow, specOfRow, targetFor } from "./targets.js";

/** What building a saved connection's connector needs (a subset of the app's deps). */
export interface SavedConnectionDeps {
  config: Config;
  store: Store;
  connectors: ConnectorCache;
  targetGate: TargetGate;
}

/** The guarded connector of `connectionId`, which must belong to `userId` (404 otherwise). */
export async function connectorFor(deps: SavedConnectionDeps, userId: number, connectionId: number): Promise<GuardedConnector> {
  const load = async () => {
    const row = await getConnection(deps.store.db, userId, connectionId);
    if (!row) throw notFound("Database connection");
    return savedTarget(deps, row);
  };
  const connector = await deps.connectors.get(connectionId, userId, load, () => connectorFor(deps, userId, connectionId));
  if (connector.ownerId !== userId) throw notFound("Database connection");
  if (!deps.connectors.isSuspect(connectionId)) return connector;
  // Opened before a gap in the news from other instances, or unchecked for
  // TOKEN_RECHECK_SECONDS: still the connection's? One read for all who ask meanwhile.
  const kept = await deps.connectors.checkOnce(connectionId, async () => {
    const current = await load().catch(async (err: unknown) => {
      // Deleted meanwhile: its connector goes. (A store that cannot answer now proves nothing.)
      if (err instanceof DomainError && err.code === "not_found") deps.connectors.evictHere(connectionId);
      throw err;
    });
    const opened = deps.connectors.targetOf(connectionId);
    if (opened && sameTarget(opened, current)) {
      deps.connectors.confirm(connectionId);
      return true;
    }
    deps.connectors.evictHere(connectionId);
    return false;
  });
  return kept ? connector : connectorFor(deps, userId, connectionId);
}

/** Where a saved connection reaches. One saved before a rule that now refuses it (a MySQL
 * catalog as its database) is answered as the saved connection's fault, with what to do about
 * it, not as a field of the request's body. */
export function savedTarget(deps: Pick<SavedConnectionDeps, "config" | "targetGate">, row: DbConnectionRow): ConnectionTarget {
  try {
    return targetFor(deps, specOfRow(deps.config, row));
  } catch (err) {
    if (!(err instanceof DomainError && err.code === "invalid_input")) throw err;
    const why = (err.extra.errors as { path: string; message: string }[] | undefined)?.map((e) => `${e.path.replace(/^body\./, "")}: ${e.message}`).join("; ") ?? err.message;
    throw new DomainError("conflict", `Database connection ${row.id} cannot be used as saved (${why}); change it with PUT /databases/${row.id}`);
  }
}

/** The database `connectionId` (of `userId`) reaches, as its connector's `targetKey`, without
 * opening one: from the saved row, its host resolved through the target gate. Null when the
 * connection is gone or its target is refused; a failure that may pass (a host that does not
 * resolve now, a SQLite file not there yet) is thrown, so that it is not taken for an answer. */
export async function savedTargetKey(deps: SavedConnectionDeps, userId: number, connectionId: number): Promise<string | null> {
  const row = await getConnection(deps.store.db, userId, connectionId);
  if (!row) return null;
  try {
    // The key names the database, not the login: no password needed.
    const target = targetFor(deps, { ...placeOfRow(row), password: "" });
    return await targetKey(target);
  } catch (err) {
    if (err instanceof DomainError && err.code !== "connection_failed") return null;
    throw err;
  }
}

/** Whether two targets reach the same database as the same user. */
function sameTarget(a: ConnectionTarget, b: ConnectionTarget): boolean {
  return (
    a.dialect === b.dialect &&
    a.host === b.host &&
    a.port === b.port &&
    a.database === b.database &&
    a.username === b.username &&
    a.password === b.password &&
    a.ssl === b.ssl &&
    a.filePath === b.filePath
  );
}
