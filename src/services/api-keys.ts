// API key verbs: create one (its secret is answered this once and never again), list the
// user's keys without secrets, and revoke one on every instance at once.

import { newKeySecret, keySessionId } from "../auth/api-keys.js";
import type { Scope } from "../auth/grants.js";
import type { Deps } from "../deps.js";
import { invalidFields, notFound } from "../errors.js";
import { deleteApiKey, insertApiKey, listApiKeys } from "../store/api-keys.js";
import { listConnections } from "../store/connections.js";
import type { ApiKeyRow } from "../store/schema.js";
import { insertWithinQuota } from "../store/quotas.js";
import { removeLeftovers } from "./session-leftovers.js";

export interface ApiKeyInput {
  name: string;
  scopes: Scope[];
  expires_at?: string | undefined;
  expires_in_days?: number | undefined;
  connection_ids?: number[] | undefined;
}

export interface PublicApiKey {
  id: number;
  name: string;
  /** The key's first characters and last four: enough to recognise it, never to use it. */
  prefix: string;
  last_four: string;
  scopes: Scope[];
  /** null: every connection of the user, present and future. */
  connection_ids: number[] | null;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export const publicApiKey = (row: ApiKeyRow): PublicApiKey => ({
  id: row.id,
  name: row.name,
  prefix: row.prefix,
  last_four: row.lastFour,
  scopes: row.scopes,
  connection_ids: row.connectionIds,
  created_at: row.createdAt.toISOString(),
  expires_at: iso(row.expiresAt),
  last_used_at: iso(row.lastUsedAt),
});

const invalid = (path: string, message: string) => invalidFields([{ path, message }]);

function expiryOf(input: ApiKeyInput, now: number): Date | null {
  if (input.expires_at !== undefined && input.expires_in_days !== undefined) {
    throw invalid("body.expires_in_days", "send either expires_at or expires_in_days, not both");
  }
  if (input.expires_in_days !== undefined) return new Date(now + input.expires_in_days * 86_400_000);
  if (input.expires_at === undefined) return null;
  const at = new Date(input.expires_at);
  if (at.getTime() <= now) throw invalid("body.expires_at", "must be in the future");
  return at;
}

/** A new key of `userId`; the answer is the only place its secret ever appears. */
export async function createApiKey(deps: Deps, userId: number, input: ApiKeyInput): Promise<PublicApiKey & { key: string }> {
  const expiresAt = expiryOf(input, Date.now());
  const connectionIds = input.connection_ids ? [...new Set(input.connection_ids)].sort((a, b) => a - b) : null;
  if (connectionIds) {
    const own = new Set((await listConnections(deps.store.db, userId)).map((row) => row.id));
    const foreign = connectionIds.filter((id) => !own.has(id));
    // Another user's ids read exactly as unknown ones, as everywhere.
    if (foreign.length > 0) throw invalid("body.connection_ids", `no connection ${foreign.join(", ")} among yours`);
  }
  const { secret, ...stored } = newKeySecret();
  const row = await insertWithinQuota(deps.store.db, deps.config.quotas, userId, "apiKeys", (tx) =>
    insertApiKey(tx, {
      ownerId: userId,
      name: input.name,
      ...stored,
      scopes: [...new Set(input.scopes)],
      connectionIds,
      expiresAt,
    }),
  );
  deps.logger.info({ userId, keyId: row.id, prefix: row.prefix }, "API key created");
  return { ...publicApiKey(row), key: secret };
}

export async function listApiKeysOf(deps: Deps, userId: number): Promise<PublicApiKey[]> {
  return (await listApiKeys(deps.store.db, userId)).map(publicApiKey);
}

/** Deletes the key, refuses it on every instance at once, and ends its database session and its
 * conversations. */
export async function revokeApiKey(deps: Deps, userId: number, keyId: number): Promise<void> {
  if (!(await deleteApiKey(deps.store.db, userId, keyId))) throw notFound("API key");
  await deps.tokens.revoked({ keyId });
  deps.logger.info({ userId, keyId }, "API key revoked");
  await removeLeftovers(deps, () => deps.sessions.deleteOwned(userId, keySessionId(keyId)), "revoke API key: the session store is away; the key's session and conversations are left to expire", { user_id: userId, key_id: keyId });
}
