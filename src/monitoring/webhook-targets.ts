// Where notifications may go: http(s) URLs whose host is a public address. A channel's URL
// comes from a user while Pulse runs inside a network: unchecked, a channel could make it POST
// to cloud metadata (169.254.169.254), an admin port on localhost or any private service.
// Checked when a channel is added, and again on every connection (DNS answers change).

import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import { BlockList, isIP, type LookupFunction } from "node:net";

/** Not reachable from the public internet, or not a single host. */
const NON_PUBLIC_IPV4: readonly [address: string, prefix: number][] = [
  ["0.0.0.0", 8], // unspecified, "this network"
  ["10.0.0.0", 8], // private (RFC 1918)
  ["100.64.0.0", 10], // shared address space (carrier-grade NAT)
  ["127.0.0.0", 8], // loopback
  ["169.254.0.0", 16], // link-local, cloud metadata endpoints
  ["172.16.0.0", 12], // private (RFC 1918)
  ["192.0.0.0", 24], // IETF protocol assignments
  ["192.168.0.0", 16], // private (RFC 1918)
  ["198.18.0.0", 15], // benchmarking
  ["224.0.0.0", 4], // multicast
  ["240.0.0.0", 4], // reserved, and the broadcast address
];

const NON_PUBLIC_IPV6: readonly [address: string, prefix: number][] = [
  ["::", 128], // unspecified
  ["::1", 128], // loopback
  ["fc00::", 7], // unique local
  ["fe80::", 10], // link-local
  ["fec0::", 10], // site-local (deprecated, still routed by some)
  ["ff00::", 8], // multicast
];

/** IPv6 forms that carry an IPv4 address, as the prefix the IPv4 address follows. */
const IPV4_CARRIERS = ["::ffff:", "64:ff9b::", "::"] as const; // mapped, NAT64, compatible

const nonPublic = new BlockList();
for (const [address, prefix] of NON_PUBLIC_IPV4) {
  nonPublic.addSubnet(address, prefix, "ipv4");
  // The same range inside IPv6: ::ffff:10.0.0.1 connects to 10.0.0.1.
  for (const carrier of IPV4_CARRIERS) nonPublic.addSubnet(`${carrier}${address}`, 96 + prefix, "ipv6");
  // 6to4 (2002:AABB:CCDD::/48) names the IPv4 address AA.BB.CC.DD.
  const [a, b, c, d] = address.split(".").map(Number) as [number, number, number, number];
  const hex = (x: number, y: number) => ((x << 8) | y).toString(16);
  nonPublic.addSubnet(`2002:${hex(a, b)}:${hex(c, d)}::`, 16 + prefix, "ipv6");
}
for (const [address, prefix] of NON_PUBLIC_IPV6) nonPublic.addSubnet(address, prefix, "ipv6");

/** Whether `address` (an IPv4 or IPv6 literal) is a public unicast address. */
export function isPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return false;
  return !nonPublic.check(address, family === 4 ? "ipv4" : "ipv6");
}

/** Why a URL is refused as a webhook target, or null when it is acceptable. */
export type TargetProblem = "scheme" | "unresolved" | "not_public";

export const TARGET_PROBLEMS: Record<TargetProblem, string> = {
  scheme: "only http and https URLs are allowed",
  unresolved: "its host name could not be resolved",
  not_public:
    "its host is not a public address (loopback, private, link-local, unique-local, unspecified and multicast addresses are refused; " +
    "WEBHOOK_ALLOW_PRIVATE=true allows them)",
};

/** Resolves a host name to every address it has. */
export type Resolver = (hostname: string) => Promise<readonly { address: string }[]>;

const systemResolver: Resolver = (hostname) =>
  new Promise((resolve, reject) => dnsLookup(hostname, { all: true, verbatim: true }, (err, addresses) => (err ? reject(err) : resolve(addresses))));

/** The host of a URL as an address or a name: brackets off IPv6 literals. The WHATWG parser
 * has already turned 0x7f.1 and 2130706433 into 127.0.0.1. */
const hostOf = (url: URL) => url.hostname.replace(/^\[(.*)\]$/, "$1");

/**
 * What is wrong with `url` as a notification target, null when nothing. Every address its host
 * resolves to must be public, so a name with one public and one private address is refused.
 */
export async function webhookTargetProblem(
  url: string,
  options: { allowPrivate: boolean; resolve?: Resolver },
): Promise<TargetProblem | null> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "scheme";
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") return "scheme";
  if (options.allowPrivate) return null;
  const host = hostOf(parsed);
  if (isIP(host) !== 0) return isPublicAddress(host) ? null : "not_public";
  let addresses: readonly { address: string }[];
  try {
    addresses = await (options.resolve ?? systemResolver)(host);
  } catch {
    return "unresolved";
  }
  if (addresses.length === 0) return "unresolved";
  return addresses.every((a) => isPublicAddress(a.address)) ? null : "not_public";
}

/** Thrown by publicOnlyLookup: the connection never starts. */
export class NonPublicTargetError extends Error {
  constructor() {
    super(`refused: ${TARGET_PROBLEMS.not_public}`);
    this.name = "NonPublicTargetError";
  }
}

/**
 * A `lookup` for http(s).request that resolves as usual but fails unless every address is
 * public: the check and the connection use the same answer, so a name re-pointed at a private
 * address after the channel was added (DNS rebinding) is never connected to.
 */
export const publicOnlyLookup: LookupFunction = (hostname, options, callback) => {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
    if (err) return callback(err, "", 0);
    if (addresses.length === 0 || !addresses.every((a) => isPublicAddress(a.address))) return callback(new NonPublicTargetError(), "", 0);
    if (options.all) return (callback as unknown as (e: null, all: LookupAddress[]) => void)(null, addresses);
    callback(null, addresses[0]!.address, addresses[0]!.family);
  });
};

/** Whether the host of `url` is an address literal that is not public (connecting to one
 * needs no lookup, so publicOnlyLookup never sees it). */
export function nonPublicLiteral(url: URL): boolean {
  const host = hostOf(url);
  return isIP(host) !== 0 && !isPublicAddress(host);
}
