// Turning a host name into every address it has: with the system's resolver (hosts file
// included), or with given DNS servers (TARGET_DNS_SERVERS).

import { lookup, Resolver as DnsResolver } from "node:dns/promises";
import { isIP } from "node:net";

/** Every address of a host name; rejects when it has none. */
export type Resolver = (hostname: string) => Promise<readonly { address: string }[]>;

export const systemResolver: Resolver = (hostname) => lookup(hostname, { all: true, verbatim: true });

/** Asks `servers` ("1.2.3.4", "1.2.3.4:53", "[::1]:53") for A and AAAA records, IPv4 first. */
export function serversResolver(servers: readonly string[], timeoutMs: number): Resolver {
  const resolver = new DnsResolver({ timeout: timeoutMs, tries: 2 });
  resolver.setServers(servers);
  return async (hostname) => {
    const [v4, v6] = await Promise.allSettled([resolver.resolve4(hostname), resolver.resolve6(hostname)]);
    const addresses = [...(v4.status === "fulfilled" ? v4.value : []), ...(v6.status === "fulfilled" ? v6.value : [])].map((address) => ({ address }));
    if (addresses.length === 0) throw v4.status === "rejected" ? v4.reason : new Error(`${hostname} has no address`);
    return addresses;
  };
}

/** Whether `servers` is a list Node's resolver accepts. */
export function validDnsServers(servers: readonly string[]): boolean {
  try {
    new DnsResolver().setServers(servers);
    return true;
  } catch {
    return false;
  }
}

/**
 * A host as connecting would read it: an IP literal in its usual form, numeric shorthands
 * spelled out ("127.1", "0", "0x7f.1" and "2130706433" are IPv4 addresses to the system's
 * resolver), a name in lower case. Null when it is neither an address nor a host name (a path,
 * control characters, a port or user part).
 */
export function canonicalHost(host: string): string | null {
  const literal = host.replace(/^\[(.*)\]$/, "$1");
  const v6 = isIP(literal) === 6;
  if (!v6 && !/^[\p{L}\p{N}._-]{1,253}$/u.test(host)) return null;
  try {
    return v6 ? new URL(`http://[${literal}]/`).hostname.slice(1, -1) : new URL(`http://${host}/`).hostname;
  } catch {
    return null; // an IPv6 zone ("fe80::1%eth0"), an IPv4 part above 255
  }
}
