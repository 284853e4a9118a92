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
  /** The API key the credential is (null: a login), which the audit trail records with each
   * statement the credential sends. */
  apiKeyId: number | null;
}

/** A user's own login: ownership checks in the services still apply. */
export const FULL_GRANT: Grant = Object.freeze({ scopes: "all", connectionIds: "all", apiKeyId: null });

/** Throws 403 unless `grant` allows `scope` (and, when given, reaching `connectionId`). */
export function requireScope(grant: Grant, scope: Scope | readonly Scope[], connectionId?: number): void {
  const anyOf = typeof scope === "string" ? [scope] : scope;
  if (!anyOf.some((s) => hasScope(grant, s))) {
    throw new DomainError("forbidden", `This credential lacks the ${scopesNamed(scope)} scope`);
  }
  if (connectionId !== undefined && grant.connectionIds !== "all" && !grant.connectionIds.has(connectionId)) {
    throw new DomainError("forbidden", `This credential may not use connection ${connectionId}`);
  }
}

/** "'query'", or "'query' or the 'ask'": the scopes a refusal names. */
export const scopesNamed = (scopes: Scope | readonly Scope[]) => (typeof scopes === "string" ? [scopes] : scopes).map((s) => `'${s}'`).join(" or the ");

/** Whether `grant` has `scope` (for listings, which show what a credential lacks nothing for). */
export const hasScope = (grant: Grant, scope: Scope): boolean => grant.scopes === "all" || grant.scopes.has(scope);

/** Whether `grant` may reach `connectionId` at all (for filtering listings). */
export function mayReach(grant: Grant, connectionId: number): boolean {
  return grant.connectionIds === "all" || grant.connectionIds.has(connectionId);
}

/** Checks that read the table's values of the caller's choosing and show them: custom_sql (any
 * SQL; its value, and a dry run's refusal quoting the cell it read) and freshness (max() of any
 * column, shown as its latest time, or quoted when it is no time). For a key that is the `query`
 * scope's to allow, not only monitoring's; volume, null_rate and schema_drift show counts and
 * names. Checks `existing` on the table, sent back unchanged by a PATCH that keeps its table, are
 * not new reads (the caller passes none when the PATCH moves the table). */
const READS_VALUES = new Set(["custom_sql", "freshness"]);

/** JSON with every object's keys in order: a check read back from the store (jsonb orders keys
 * its own way) equals the same check as sent. */
const canonical = (value: unknown) =>
  JSON.stringify(value, (_key, v: unknown) => (v && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v));

export function requireValueReadScope(grant: Grant, checks: readonly { kind: string }[] | undefined, existing: readonly unknown[] = []): void {
  if (!checks || hasScope(grant, "query")) return;
  const kept = new Set(existing.map(canonical));
  const reading = checks.find((check) => READS_VALUES.has(check.kind) && !kept.has(canonical(check)));
  if (reading) {
    throw new DomainError("forbidden", `${reading.kind} checks read the table's values: this credential needs the 'query' scope for them, besides 'monitoring:write'`);
  }
}
