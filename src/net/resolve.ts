// Turning a host name into every address it has: Pulse's own servers' names with the system's
// resolver (hosts file included); names users give (a customer database's host, a webhook's)
// from DNS servers asked in the event loop (c-ares), never holding one of libuv's threads.

import dnsPromises, { lookup, Resolver as DnsResolver } from "node:dns/promises";
import { isIP } from "node:net";

import { within } from "../within.js";

/** Every address of a host name; rejects when it has none. */
export type Resolver = (hostname: string) => Promise<readonly { address: string }[]>;

/** For names the operator gives (DATABASE_URL, REDIS_URL): as connecting to them does. */
export const systemResolver: Resolver = (hostname) => lookup(hostname, { all: true, verbatim: true });

/** How the DNS failed when it answered at once (no such name, no address of that family, a
 * server refusing, none listening): a name the system may still know otherwise. Neither a
 * timeout nor a server failure is among them: names whose servers never answer are the attack
 * (see dnsResolver), and a resolver answers a silent upstream with SERVFAIL. */
const ANSWERED_WITHOUT_ADDRESS = new Set(["ENOTFOUND", "ENODATA", "EREFUSED", "ECONNREFUSED"]);
/** The system's lookups waiting their turn at most; past it, one more is refused at once. */
const MAX_SYSTEM_LOOKUPS_WAITING = 16;

/** Lookups through `lookup` one after another, each within its caller's bound; at most
 * `maxWaiting` wait their turn (one more is refused at once), and one whose caller stopped
 * waiting is skipped when its turn comes. */
export class LookupsInTurn {
  private last: Promise<unknown> = Promise.resolve();
  private waiting = 0;

  constructor(
    private readonly lookup: Resolver,
    private readonly maxWaiting: number,
  ) {}

  run(hostname: string, timeoutMs: number): Promise<readonly { address: string }[]> {
    if (this.waiting >= this.maxWaiting) return Promise.reject(new Error(`too many host names waiting to be looked up (${hostname})`));
    this.waiting++;
    let abandoned = false;
    const looked = this.last.then(() => {
      this.waiting--;
      return abandoned ? [] : this.lookup(hostname);
    });
    this.last = looked.catch(() => undefined);
    return within(looked, timeoutMs, `looking ${hostname} up`).catch((err: unknown) => {
      abandoned = true;
      throw err;
    });
  }
}

/** The system's lookups (getaddrinfo) of names users give: each holds a thread of libuv's four
 * (which file reads and other lookups share) until it ends. */
const systemLookups = new LookupsInTurn(systemResolver, MAX_SYSTEM_LOOKUPS_WAITING);

/**
 * For names users give: asks `servers` (the system's DNS servers unless given: "1.2.3.4",
 * "1.2.3.4:53", "[::1]:53") for A and AAAA records, IPv4 first, each try bounded by
 * `timeoutMs` (two tries per server). The system's resolver, getaddrinfo, holds a thread of
 * libuv's pool until the name's DNS servers answer, and cannot be cancelled: six names whose
 * servers never answer, sent by one user, held every lookup and file read of the process for
 * 30 s. Without `servers`, a name the DNS answered for without an address (or could not answer
 * for at once) is looked up as the system would (hosts file, mDNS: `localhost`, aliases an
 * orchestrator writes there), one such lookup at a time and within `timeoutMs`.
 */
export function dnsResolver(timeoutMs: number, servers?: readonly string[]): Resolver {
  const resolver = new DnsResolver({ timeout: timeoutMs, tries: 2 });
  // Read through the module (its named export keeps the servers of its first resolver, which
  // dns.promises.setServers replaces).
  resolver.setServers(servers ?? dnsPromises.getServers());
  return async (hostname) => {
    const [v4, v6] = await Promise.allSettled([resolver.resolve4(hostname), resolver.resolve6(hostname)]);
    const addresses = [...(v4.status === "fulfilled" ? v4.value : []), ...(v6.status === "fulfilled" ? v6.value : [])].map((address) => ({ address }));
    if (addresses.length > 0) return addresses;
    const elsewhere = [v4, v6].every((r) => r.status === "rejected" && ANSWERED_WITHOUT_ADDRESS.has((r.reason as { code?: string }).code ?? ""));
    if (servers || !elsewhere) throw v4.status === "rejected" ? v4.reason : new Error(`${hostname} has no address`);
    return systemLookups.run(hostname, timeoutMs);
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
