// What an IP address is (loopback, private, link-local, ...) and sets of address ranges, for
// everything that decides where Pulse may connect: notification webhooks (public addresses
// only) and customer databases (the network policy). The one table of special-purpose ranges.

import { BlockList, isIP } from "node:net";
import { networkInterfaces } from "node:os";

import { canonicalHost } from "./resolve.js";

/** Special-purpose kinds of address; every other address is "public". */
export type AddressKind = "loopback" | "unspecified" | "link_local" | "multicast" | "reserved" | "metadata" | "private";

/** In the order they are looked up: IPv4-compatible ::1 is loopback before it is in ::/104. */
const SPECIAL_RANGES: readonly [kind: AddressKind, networks: readonly string[]][] = [
  ["loopback", ["127.0.0.0/8", "::1/128"]],
  ["unspecified", ["0.0.0.0/8", "::/128"]], // 0.0.0.0 connects to this machine
  ["link_local", ["169.254.0.0/16", "fe80::/10"]], // cloud metadata lives at 169.254.169.254
  ["multicast", ["224.0.0.0/4", "ff00::/8"]],
  ["reserved", ["240.0.0.0/4", "100::/64"]], // and the broadcast address; IPv6 discard-only
  // Cloud metadata endpoints outside link-local, in ranges that are otherwise private: AWS's over
  // IPv6, Alibaba Cloud's, Oracle Cloud's.
  ["metadata", ["fd00:ec2::254/128", "100.100.100.200/32", "192.0.0.192/32"]],
  [
    "private",
    [
      "10.0.0.0/8", // RFC 1918
      "100.64.0.0/10", // shared address space (carrier-grade NAT)
      "172.16.0.0/12", // RFC 1918
      "192.0.0.0/24", // IETF protocol assignments
      "192.168.0.0/16", // RFC 1918
      "198.18.0.0/15", // benchmarking
      // Documentation (RFC 5737, RFC 3849): never on the internet, so a host carrying one is on
      // the operator's own network.
      "192.0.2.0/24",
      "198.51.100.0/24",
      "203.0.113.0/24",
      "2001:db8::/32",
      "fc00::/7", // unique local
      "fec0::/10", // site-local (deprecated, still routed by some)
      "64:ff9b:1::/48", // local-use NAT64 (RFC 8215): translates to addresses of this network
      "3fff::/20", // documentation (RFC 9637)
      // IETF protocol assignments: Teredo (2001::/32, which carries an IPv4 address obfuscated),
      // benchmarking, ORCHID; and the deprecated 6to4 relay anycast.
      "2001::/23",
      "192.88.99.0/24",
    ],
  ],
];

/**
 * IPv6 forms that carry an IPv4 address in their last 32 bits: mapped (::ffff:0:0/96), translated
 * (::ffff:0:0:0/96), NAT64 (64:ff9b::/96 and the /96 form of 64:ff9b:1::/48) and compatible
 * (::/96). Each reaches (or is translated to) the IPv4 address, so it is treated as that address.
 */
const IPV4_CARRIERS = ["::ffff:", "::ffff:0:", "64:ff9b::", "64:ff9b:1::", "::"] as const;

/** An address range: "10.0.0.0/8", "fd00::/8", or one address. */
export interface Network {
  address: string;
  prefix: number;
  family: "ipv4" | "ipv6";
}

/** Parses "address/prefix" or a single address; null when it is neither. */
export function parseNetwork(text: string): Network | null {
  const [address = "", prefixText, ...rest] = text.trim().split("/");
  const version = isIP(address);
  if (version === 0 || rest.length > 0) return null;
  const max = version === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (!(prefix >= 0 && prefix <= max)) return null;
  return { address, prefix, family: version === 4 ? "ipv4" : "ipv6" };
}

/**
 * A set of address ranges in which an IPv4 range also holds the IPv6 forms that carry its
 * addresses (::ffff:10.0.0.1, 64:ff9b::a00:1, 6to4's 2002:a00:1::), so no spelling escapes it.
 */
export function addressSet(networks: readonly Network[]): BlockList {
  const set = new BlockList();
  for (const { address, prefix, family } of networks) {
    set.addSubnet(address, prefix, family);
    if (family === "ipv6") continue;
    for (const carrier of IPV4_CARRIERS) set.addSubnet(`${carrier}${address}`, 96 + prefix, "ipv6");
    // 6to4 (2002:AABB:CCDD::/48) names the IPv4 address AA.BB.CC.DD.
    const [a, b, c, d] = address.split(".").map(Number) as [number, number, number, number];
    const hex = (x: number, y: number) => ((x << 8) | y).toString(16);
    set.addSubnet(`2002:${hex(a, b)}:${hex(c, d)}::`, 16 + prefix, "ipv6");
  }
  return set;
}

/** Whether `address` (an IP literal) is in `set`. */
export function inSet(set: BlockList, address: string): boolean {
  const version = isIP(address);
  return version !== 0 && set.check(address, version === 4 ? "ipv4" : "ipv6");
}

const SPECIAL_SETS = SPECIAL_RANGES.map(([kind, networks]) => [kind, addressSet(networks.map((n) => parseNetwork(n)!))] as const);

/** The special-purpose kind of an IP literal, or "public". */
export function addressKind(address: string): AddressKind | "public" {
  for (const [kind, set] of SPECIAL_SETS) if (inSet(set, address)) return kind;
  return "public";
}

/** Whether `address` (an IPv4 or IPv6 literal) is a public unicast address. */
export const isPublicAddress = (address: string): boolean => isIP(address) !== 0 && addressKind(address) === "public";

/** How each kind reads in a message. */
export const KIND_NAMES: Record<AddressKind, string> = {
  loopback: "a loopback address",
  unspecified: "the unspecified address (this machine)",
  link_local: "a link-local address (cloud metadata endpoints live there)",
  multicast: "a multicast address",
  reserved: "a reserved address",
  metadata: "a cloud metadata endpoint",
  private: "a private address",
};

/** How long the addresses of this machine's interfaces are kept before they are read again: an
 * address gained since (a network attached late, a DHCP lease changed) is this machine's too. */
const INTERFACES_MAX_AGE_MS = 10_000;
let interfaces: { set: BlockList; at: number } | undefined;

/** Whether a connection to `address` reaches this machine: loopback, unspecified (0.0.0.0 and
 * :: connect here), or an address of one of its interfaces, in any IPv6 spelling. */
export function isThisMachine(address: string): boolean {
  const kind = addressKind(address);
  if (kind === "loopback" || kind === "unspecified") return true;
  const now = Date.now();
  if (!interfaces || now - interfaces.at > INTERFACES_MAX_AGE_MS) {
    const networks = Object.values(networkInterfaces())
      .flat()
      .map((info) => info && parseNetwork(info.address.replace(/%.*$/, "")))
      .filter((network): network is Network => Boolean(network));
    interfaces = { set: addressSet(networks), at: now };
  }
  return inSet(interfaces.set, address);
}

/**
 * The key a client's rate limits are kept under: an IPv4 address as it is (also when written as
 * IPv4-mapped IPv6), an IPv6 address by its /64. A /64 is what one subscriber is given, so an
 * attacker could otherwise rotate through 2^64 addresses, each with limits of its own.
 * Anything else (no socket address) is kept as it is, cut to a bounded length.
 */
export function clientKey(address: string): string {
  const version = isIP(address);
  if (version === 4) return address;
  if (version !== 6) return address.slice(0, 100);
  // One canonical spelling (lower case, embedded IPv4 as hex); a zone names no other client.
  const canonical = canonicalHost(address.replace(/%.*$/, ""));
  if (canonical === null) return address.slice(0, 100);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (mapped) {
    const [high, low] = [parseInt(mapped[1]!, 16), parseInt(mapped[2]!, 16)];
    return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
  }
  const [head = "", tail] = canonical.split("::");
  const before = head ? head.split(":") : [];
  const after = tail ? tail.split(":") : [];
  const groups = tail === undefined ? before : [...before, ...Array<string>(8 - before.length - after.length).fill("0"), ...after];
  return `${groups.slice(0, 4).join(":")}::/64`;
}
