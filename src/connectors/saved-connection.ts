// The guarded connector of one of a user's saved connections: built once from its row and
// kept in the cache (cache.ts), its owner checked on every use. The verbs (services/) and the
// monitoring engine both reach customer databases through it.

import type { Config } from "../config.js";
import { notFound } from "../errors.js";
import type { Store } from "../store/client.js";
import { getConnection } from "../store/connections.js";
import type { ConnectorCache } from "./cache.js";
import type { GuardedConnector } from "./guarded.js";
import type { TargetGate } from "./target-gate.js";
import { specOfRow, targetFor } from "./targets.js";

/** What building a saved connection's connector needs (a subset of the app's deps). */
export interface SavedConnectionDeps {
  config: Config;
  store: Store;
  connectors: ConnectorCache;
  targetGate: TargetGate;
}

/** The guarded connector of `connectionId`, which must belong to `userId` (404 otherwise). */
export async function connectorFor(deps: SavedConnectionDeps, userId: number, connectionId: number): Promise<GuardedConnector> {
  const connector = await deps.connectors.get(connectionId, userId, async () => {
    const row = await getConnection(deps.store.db, userId, connectionId);
    if (!row) throw notFound("Database connection");
    return targetFor(deps, specOfRow(deps.config, row));
  });
  if (connector.ownerId !== userId) throw notFound("Database connection");
  return connector;
}
