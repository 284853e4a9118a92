// What the credential a request came with allows. A login token (JWT) may do everything its
// user may; an API key only what its scopes and its list of connections allow. Every edge
// (HTTP routes, MCP tools) asks requireScope before it calls a verb, so one rule decides.

import { DomainError } from "../errors.js";

export const SCOPES = ["query", "ask", "monitoring:read", "monitoring:write"] as const;
export type Scope = (typeof SCOPES)[number];

export interface Grant {
  scopes: ReadonlySet<Scope> | "all";
  /** The connections the credential may reach; "all" for every connection of its user. */
  connectionIds: ReadonlySet<number> | "all";
}

/** A user's own login: ownership checks in the services still apply. */
export const FULL_GRANT: Grant = Object.freeze({ scopes: "all", connectionIds: "all" });

/** Throws 403 unless `grant` allows `scope` (and, when given, reaching `connectionId`). */
export function requireScope(grant: Grant, scope: Scope, connectionId?: number): void {
  if (!hasScope(grant, scope)) {
    throw new DomainError("forbidden", `This credential lacks the '${scope}' scope`);
  }
  if (connectionId !== undefined && grant.connectionIds !== "all" && !grant.connectionIds.has(connectionId)) {
    throw new DomainError("forbidden", `This credential may not use connection ${connectionId}`);
  }
}

/** Whether `grant` has `scope` (for listings, which show what a credential lacks nothing for). */
export const hasScope = (grant: Grant, scope: Scope): boolean => grant.scopes === "all" || grant.scopes.has(scope);

/** Whether `grant` may reach `connectionId` at all (for filtering listings). */
export function mayReach(grant: Grant, connectionId: number): boolean {
  return grant.connectionIds === "all" || grant.connectionIds.has(connectionId);
}

/** A custom_sql check runs SQL of the user's own and can show what it read (its value, a dry
 * run's refusal quoting a cell): for a key, that is the `query` scope's to allow, not only
 * monitoring's. */
export function requireCustomSqlScope(grant: Grant, checks: readonly { kind: string }[] | undefined): void {
  if (checks?.some((check) => check.kind === "custom_sql") && !hasScope(grant, "query")) {
    throw new DomainError("forbidden", "custom_sql checks run SQL of their own: this credential needs the 'query' scope for them, besides 'monitoring:write'");
  }
}
