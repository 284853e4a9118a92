// Pulse's own servers, which no connection may reach: the metadata store (every user's password
// hash, every sealed secret) and Redis (a PostgreSQL startup packet is no Redis command, but a
// crafted one could be read as one). Known by address and port before connecting, and the
// metadata store also by what the server says it is after connecting (postgres-identity.ts),
// so no alias, DNS name or port-forward reaches it.

import type { BlockList } from "node:net";
import { sql } from "drizzle-orm";

import type { Config } from "../config.js";
import { addressSet, inSet, isThisMachine, parseNetwork } from "../net/addresses.js";
import { systemResolver } from "../net/resolve.js";
import type { Store } from "../store/client.js";
import { rowsOf } from "../store/rows.js";
import { postgresIdentity, type PostgresIdentity } from "./drivers/postgres-identity.js";
import type { Dialect } from "./types.js";

export type OwnService = "metadata store" | "Redis";

export interface OwnServices {
  /** Which of Pulse's servers a connection to `address:port` would reach, or null. The metadata
   * store only counts with its own database: its cluster's other databases may be customers'. */
  at(address: string, port: number, dialect: Dialect, database: string): OwnService | null;
  /** Whether a PostgreSQL session (as its server describes it) is in the metadata store's database. */
  isMetadataStore(identity: PostgresIdentity): Promise<boolean>;
  /** Whether connections to PostgreSQL need the check above (a PostgreSQL metadata store). */
  readonly checksPostgres: boolean;
}

interface Endpoint {
  service: OwnService;
  port: number;
  addresses: BlockList;
  /** Reached through any address of this machine, not only the one it was named by. */
  local: boolean;
  /** The metadata store's database. */
  database?: string;
}

/** Resolves Pulse's own servers once, at start, and reads the metadata store's identity. */
export async function findOwnServices(config: Pick<Config, "databaseUrl" | "redisUrl">, store: Store): Promise<OwnServices> {
  const endpoints: Endpoint[] = [];
  if (config.databaseUrl) {
    const url = new URL(config.databaseUrl);
    const database = decodeURIComponent(url.pathname.slice(1)) || decodeURIComponent(url.username);
    endpoints.push({ service: "metadata store", database, ...(await endpointOf(url, 5432)) });
  }
  if (config.redisUrl) endpoints.push({ service: "Redis", ...(await endpointOf(new URL(config.redisUrl), 6379)) });

  const readStoreIdentity = () =>
    postgresIdentity(async (text) => rowsOf<Record<string, unknown>>(await store.db.execute(sql.raw(text))));
  let storeIdentity = config.databaseUrl && store.kind === "postgresql" ? await readStoreIdentity() : null;

  return {
    at(address, port, dialect, database) {
      for (const endpoint of endpoints) {
        if (endpoint.port !== port) continue;
        if (!(inSet(endpoint.addresses, address) || (endpoint.local && isThisMachine(address)))) continue;
        if (endpoint.service === "metadata store" && (dialect !== "postgresql" || database !== endpoint.database)) continue;
        return endpoint.service;
      }
      return null;
    },

    checksPostgres: storeIdentity !== null,

    async isMetadataStore(identity) {
      if (!storeIdentity || identity.databaseOid !== storeIdentity.databaseOid) return false;
      if (identity.systemIdentifier !== null && storeIdentity.systemIdentifier !== null) {
        return identity.systemIdentifier === storeIdentity.systemIdentifier;
      }
      // Only start times to compare: the store's changes when its server restarts, so read it again.
      storeIdentity = await readStoreIdentity();
      return identity.startedAt === storeIdentity.startedAt && identity.databaseOid === storeIdentity.databaseOid;
    },
  };
}

/** A URL's host and port as an endpoint. No host (a Unix socket) is this machine. */
async function endpointOf(url: URL, defaultPort: number) {
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const addresses = host ? (await systemResolver(host)).map((a) => a.address) : [];
  return {
    port: Number(url.port || defaultPort),
    addresses: addressSet(addresses.map((address) => parseNetwork(address)!)),
    local: addresses.length === 0 || addresses.some(isThisMachine),
  };
}
