// Where notifications may go: http(s) URLs whose host is a public address. A channel's URL
// comes from a user while Pulse runs inside a network: unchecked, a channel could make it POST
// to cloud metadata (169.254.169.254), an admin port on localhost or any private service.
// Checked when a channel is added, and again on every connection (DNS answers change).

import type { LookupAddress } from "node:dns";
import { isIP, type LookupFunction } from "node:net";

import { isPublicAddress, isThisMachine } from "../net/addresses.js";
import { dnsResolver, type Resolver } from "../net/resolve.js";

/** Why a URL is refused as a webhook target, or null when it is acceptable. */
export type TargetProblem = "scheme" | "port" | "unresolved" | "not_public";

export const TARGET_PROBLEMS: Record<TargetProblem, string> = {
  scheme: "only http and https URLs are allowed",
  port: "port 0 is no port a notification can reach: give the real one, or none for the scheme's own",
  unresolved: "its host name could not be resolved",
  not_public:
    "its host is not a public address (loopback, private, link-local, unique-local, unspecified, multicast and documentation addresses, " +
    "and this machine's own, are refused; WEBHOOK_ALLOW_PRIVATE=true allows them)",
};

/** Where a notification may go: a public address that is not this machine's own. On a host whose
 * network card carries its public address, that address reaches every service listening on all
 * interfaces (admin ports, metrics, Pulse itself), and a channel's test answer (refused, 404,
 * timeout) would tell a user which ports are open. */
const isTarget = (address: string) => isPublicAddress(address) && !isThisMachine(address);

/** The host of a URL as an address or a name: brackets off IPv6 literals. The WHATWG parser
 * has already turned 0x7f.1 and 2130706433 into 127.0.0.1. */
const hostOf = (url: URL) => url.hostname.replace(/^\[(.*)\]$/, "$1");

/**
 * What is wrong with `url` as a notification target, null when nothing. Every address its host
 * resolves to must be public, so a name with one public and one private address is refused.
 */
export async function webhookTargetProblem(url: string, options: { allowPrivate: boolean; resolve: Resolver }): Promise<TargetProblem | null> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "scheme";
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") return "scheme";
  // Accepted, every notification to it would fail to connect, with nothing said when it was saved.
  if (parsed.port === "0") return "port";
  if (options.allowPrivate) return null;
  const host = hostOf(parsed);
  if (isIP(host) !== 0) return isTarget(host) ? null : "not_public";
  let addresses: readonly { address: string }[];
  try {
    addresses = await options.resolve(host);
  } catch {
    return "unresolved";
  }
  if (addresses.length === 0) return "unresolved";
  return addresses.every((a) => isTarget(a.address)) ? null : "not_public";
}

/** Thrown by webhookLookup: the connection never starts. */
export class NonPublicTargetError extends Error {
  constructor() {
    super(`refused: ${TARGET_PROBLEMS.not_public}`);
    this.name = "NonPublicTargetError";
  }
}

/** The resolver of webhook hosts (net/resolve.ts: in the event loop, each of its two tries
 * within a quarter of the send's timeout), one per timeout. */
const resolvers = new Map<number, Resolver>();
export function webhookResolver(sendTimeoutMs: number): Resolver {
  let resolver = resolvers.get(sendTimeoutMs);
  if (!resolver) resolvers.set(sendTimeoutMs, (resolver = dnsResolver(Math.ceil(sendTimeoutMs / 4))));
  return resolver;
}

/**
 * A `lookup` for http(s).request that resolves with `resolve` (in the event loop, not the
 * system's getaddrinfo on libuv's threads) and, unless private targets are allowed, fails
 * unless every address is public: the check and the connection use the same answer, so a name
 * re-pointed at a private address after the channel was added (DNS rebinding) is never
 * connected to.
 */
export const webhookLookup =
  (resolve: Resolver, allowPrivate: boolean): LookupFunction =>
  (hostname, options, callback) => {
    resolve(hostname).then(
      (found) => {
        const addresses: LookupAddress[] = found.map(({ address }) => ({ address, family: isIP(address) })).filter((a) => !options.family || a.family === options.family);
        if (addresses.length === 0 || !(allowPrivate || addresses.every((a) => isTarget(a.address)))) return callback(new NonPublicTargetError(), "", 0);
        if (options.all) return (callback as unknown as (e: null, all: LookupAddress[]) => void)(null, addresses);
        callback(null, addresses[0]!.address, addresses[0]!.family);
      },
      (err: NodeJS.ErrnoException) => callback(err, "", 0),
    );
  };

/** Whether the host of `url` is an address literal that is no target (connecting to one needs
 * no lookup, so webhookLookup never sees it). */
export function nonPublicLiteral(url: URL): boolean {
  const host = hostOf(url);
  return isIP(host) !== 0 && !isTarget(host);
}
