// Which database a connection reaches, as a key: saved connections (of any user) that reach
// the same database share its budget, however they spell its host (LOCALHOST, 127.1,
// ::ffff:127.0.0.1, a DNS name, the machine's own address).

import { lookup } from "node:dns/promises";
import { isIP } from "node:net";

import { DomainError } from "../errors.js";
import { isThisMachine } from "../net/addresses.js";
import { canonicalHost } from "../net/resolve.js";
import type { ConnectionTarget } from "./types.js";

/** The address a driver connects to for `host`: the first of the resolver's answers, as
 * net.connect takes it. Connectors pass their target gate's (TARGET_DNS_SERVERS when set). */
export type ResolveHost = (host: string) => Promise<string>;

export const resolveHost: ResolveHost = async (host) => {
  try {
    return (await lookup(host)).address;
  } catch {
    // The drivers' words for the same failure (a transient one, retried by monitoring).
    throw new DomainError("connection_failed", `could not resolve host "${host}"`);
  }
};

/** The key of `target`'s database: dialect, address, port and database; the real path of a
 * SQLite file (already resolved inside SQLITE_ROOT). The host is resolved as its connections
 * will be: through the target's gate when it has one. */
export async function targetKey(target: ConnectionTarget, resolve: ResolveHost = gateOrDns(target)): Promise<string> {
  if (target.dialect === "sqlite") return JSON.stringify(["sqlite", target.filePath]);
  const address = hostIdentity(await resolve(target.host));
  return JSON.stringify([target.dialect, address, target.port, target.database]);
}

const gateOrDns = (target: ConnectionTarget): ResolveHost => (target.gate ? (host) => target.gate!.address(host) : resolveHost);

/** "this host" for every address that reaches this machine (a server listening on all of
 * them is one server), otherwise the address in one spelling. */
function hostIdentity(address: string): string {
  const canonical = canonicalAddress(address);
  return isThisMachine(canonical) ? "this host" : canonical;
}

/** One spelling per address: IPv6 as the WHATWG URL parser writes it (0:0::1 is ::1), and an
 * IPv4-mapped IPv6 address (::ffff:10.0.0.1, which connects to 10.0.0.1) as its IPv4 address. */
function canonicalAddress(address: string): string {
  if (isIP(address) !== 6) return address;
  // Null for a zone index (fe80::1%eth0), which has no URL form.
  const text = canonicalHost(address) ?? address.toLowerCase();
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(text);
  if (!mapped) return text;
  const [high, low] = [parseInt(mapped[1]!, 16), parseInt(mapped[2]!, 16)];
  return [high >> 8, high & 255, low >> 8, low & 255].join(".");
}
