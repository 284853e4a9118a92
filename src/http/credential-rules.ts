// What an API key may not do that a login may, beyond its scopes (src/auth/grants.ts): manage
// the account, its keys and its connections, or reach its user's other sessions. Routes call
// these next to requireScope; a login token passes them all.

import { mayReach, type Grant } from "../auth/grants.js";
import { DomainError } from "../errors.js";
import type { AuthContext } from "./context.js";

/** The caller's login token; 403 for an API key. */
export function requireLogin(auth: AuthContext, what: string) {
  if (auth.kind !== "login") throw new DomainError("forbidden", `API keys cannot ${what}: use a login token`);
  return auth;
}

/** The session a request names (`session_id`), checked: an API key works on its own session
 * only, since its user's login sessions may be connected to connections it may not reach. */
export function requestedSession(auth: AuthContext, sessionId: string | undefined): string | undefined {
  if (auth.kind === "key" && sessionId !== undefined && sessionId !== auth.sessionId) {
    throw new DomainError("forbidden", "An API key works on its own session only: leave session_id out");
  }
  return sessionId;
}

/** 403 unless the credential may reach `connectionId`, whatever its scopes (reading a
 * connection's settings needs none). */
export function requireReach(grant: Grant, connectionId: number): void {
  if (!mayReach(grant, connectionId)) throw new DomainError("forbidden", `This credential may not use connection ${connectionId}`);
}

/** 403 for a key limited to some connections: what concerns all of them at once (notification
 * channels get every alert) needs a key for all of them. */
export function requireEveryConnection(grant: Grant, what: string): void {
  if (grant.connectionIds !== "all") throw new DomainError("forbidden", `A key limited to some connections cannot ${what}`);
}
