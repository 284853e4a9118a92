// Who the client is, for the limits kept per client (sign-ups, logins, unknown API keys).

import { getConnInfo } from "@hono/node-server/conninfo";
import type { Context } from "hono";

import { clientKey } from "../net/addresses.js";
import type { AppEnv } from "./context.js";

/** The client's address, or an IPv6 address's /64 (clientKey). Behind `trustedProxies`
 * proxies, the address of X-Forwarded-For that the outermost of them appended: each appends the
 * address it saw, so with one proxy the last entry, with two the one before it. The entries
 * before that are whatever the client sent, so taking the first would let a client pick its own
 * address for every per-client limit (or someone else's, to lock them out). */
export function clientIp(c: Context<AppEnv>, trustedProxies: number): string {
  if (trustedProxies > 0) {
    const entries = c.req.header("x-forwarded-for")?.split(",") ?? [];
    const forwarded = entries[Math.max(0, entries.length - trustedProxies)]?.trim();
    if (forwarded) return clientKey(forwarded);
  }
  try {
    return clientKey(getConnInfo(c).remote.address ?? "unknown");
  } catch {
    return "unknown"; // app.request() in tests has no socket
  }
}
