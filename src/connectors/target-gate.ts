// The one way a driver reaches a database server: at every new connection (a probe, and each
// connection a pool opens later) the host is resolved, every address it has is checked against
// Pulse's own servers and the network policy, and the socket connects to those addresses only,
// so a name re-pointed after it was checked (DNS rebinding) is never connected to. After
// connecting, a PostgreSQL server must also not say it is the metadata store.

import { Socket, isIP, type LookupFunction } from "node:net";

import type { Config } from "../config.js";
import { DomainError } from "../errors.js";
import { canonicalHost, dnsResolver, type Resolver } from "../net/resolve.js";
import type { Store } from "../store/client.js";
import { postgresIdentity, type RunSql } from "./drivers/postgres-identity.js";
import { networkPolicy, type NetworkPolicy } from "./network-policy.js";
import { findOwnServices, type OwnService, type OwnServices } from "./own-services.js";
import type { ConnectionTarget } from "./types.js";

export interface TargetGate {
  /** An unconnected socket for `target`: its connect(port, host) goes to checked addresses only. */
  socket(target: ConnectionTarget): Socket;
  /** The first address `host` resolves to, with the resolver sockets use (a budget's key). */
  address(host: string): Promise<string>;
  /** After connecting to PostgreSQL: refuses a session in the metadata store's database. */
  checkPostgresSession(run: RunSql): Promise<void>;
}

const ownServiceRefusal = (service: OwnService) =>
  new DomainError("forbidden", `This connection points at Pulse's own ${service === "Redis" ? "Redis" : "metadata database"}`);

export async function createTargetGate(config: Pick<Config, "env" | "targets" | "databaseUrl" | "redisUrl" | "connectTimeoutMs">, store: Store): Promise<TargetGate> {
  // Two tries of a quarter each, the second's wait doubled: about the connect timeout per server.
  const resolver = dnsResolver(Math.ceil(config.connectTimeoutMs / 4), config.targets.dnsServers.length > 0 ? config.targets.dnsServers : undefined);
  return gateOf(networkPolicy(config), await findOwnServices(config, store), resolver);
}

function gateOf(policy: NetworkPolicy, own: OwnServices, resolve: Resolver): TargetGate {
  /** Every address `target`'s host resolves to now, each one allowed; a 403 when any is not. */
  async function addressesOf(target: ConnectionTarget): Promise<readonly { address: string }[]> {
    const host = canonicalHost(target.host);
    if (host === null) throw new DomainError("invalid_input", `host: "${target.host}" is not a host name or an IP address`);
    let addresses: readonly { address: string }[];
    try {
      addresses = isIP(host) !== 0 ? [{ address: host }] : await resolve(host);
    } catch {
      addresses = [];
    }
    if (addresses.length === 0) throw new DomainError("connection_failed", `could not resolve host "${target.host}"`);
    for (const { address } of addresses) {
      const service = own.at(address, target.port, target.dialect, target.database);
      if (service) throw ownServiceRefusal(service);
      const refusal = policy.refusal(address);
      if (refusal) throw new DomainError("forbidden", `Connections to ${target.host} are refused: ${refusal}`);
    }
    return addresses;
  }

  return {
    socket: (target) => new GatedSocket(target, addressesOf),
    async address(host) {
      const canonical = canonicalHost(host);
      if (canonical !== null && isIP(canonical) !== 0) return canonical;
      const first = await resolve(canonical ?? host).then((found) => found[0]?.address, () => undefined);
      if (first === undefined) throw new DomainError("connection_failed", `could not resolve host "${host}"`);
      return first;
    },
    async checkPostgresSession(run) {
      if (!own.checksPostgres) return;
      let sameDatabase: boolean;
      try {
        sameDatabase = await own.isMetadataStore(await postgresIdentity(run));
      } catch (err) {
        // A server that cannot say what it is might be the metadata store: refused.
        throw new DomainError("forbidden", `Could not confirm that this server is not Pulse's own metadata database: ${(err as Error).message}`);
      }
      if (sameDatabase) throw ownServiceRefusal("metadata store");
    },
  };
}

/** A socket whose connect(port, host), as the drivers call it, first resolves and checks the
 * host, then connects to the addresses checked (Node tries each, as it would for a name). */
class GatedSocket extends Socket {
  constructor(
    private readonly target: ConnectionTarget,
    private readonly check: (target: ConnectionTarget) => Promise<readonly { address: string }[]>,
  ) {
    super();
  }

  override connect(...args: unknown[]): this {
    if (typeof args[0] !== "number") {
      // pg reads a host starting with "/" as a Unix socket directory: never for a customer.
      process.nextTick(() => this.destroy(new DomainError("invalid_input", "host: connections are made over TCP only")));
      return this;
    }
    this.check(this.target).then(
      (addresses) => {
        if (this.destroyed) return; // the driver gave up (connect timeout) meanwhile
        const lookup: LookupFunction = (_hostname, options, callback) => {
          const all = addresses.map(({ address }) => ({ address, family: isIP(address) }));
          if (options.all) (callback as unknown as (err: null, all: typeof addresses) => void)(null, all);
          else callback(null, all[0]!.address, all[0]!.family);
        };
        // One address is connected to as it is; a name's addresses are tried in turn.
        const host = addresses.length === 1 ? addresses[0]!.address : canonicalHost(this.target.host)!;
        super.connect({ port: this.target.port, host, lookup });
      },
      (err: unknown) => this.destroy(err as Error),
    );
    return this;
  }
}
