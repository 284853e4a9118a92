// Who the client is, for the limits kept per client (sign-ups, logins, unknown API keys).

import { getConnInfo } from "@hono/node-server/conninfo";
import type { Context } from "hono";

import { clientKey } from "../net/addresses.js";
import type { AppEnv } from "./context.js";

/** The client's address, or an IPv6 address's /64 (clientKey); behind a trusted proxy, the
 * last address of X-Forwarded-For: the one that proxy saw and appended. Those before it are
 * whatever the client sent, so taking the first would let a client pick its own address for
 * every per-client limit (or someone else's, to lock them out). */
export function clientIp(c: Context<AppEnv>, trustProxy: boolean): string {
  if (trustProxy) {
    const forwarded = c.req.header("x-forwarded-for")?.split(",").at(-1)?.trim();
    if (forwarded) return clientKey(forwarded);
  }
  try {
    return clientKey(getConnInfo(c).remote.address ?? "unknown");
  } catch {
    return "unknown"; // app.request() in tests has no socket
  }
}
