// What a session store keeps for a credential or an account that is gone (a logged-out session,
// a revoked key, a deleted user) is removed after the removal is committed: its answer stands.

import type { Deps } from "../deps.js";
import { DomainError } from "../errors.js";

/** Runs `removal` of session-store records once what they belonged to is gone for good. A store
 * that is away leaves them to their TTLs (none holds a credential) rather than answer that the
 * committed logout, revocation or deletion failed (its retry would find nothing: 404), and logs
 * `warning` saying what was left. */
export async function removeLeftovers(deps: Pick<Deps, "logger">, removal: () => Promise<unknown>, warning: string, context: Record<string, unknown>): Promise<void> {
  await removal().catch((err: unknown) => {
    if (!(err instanceof DomainError && err.code === "sessions_unavailable")) throw err;
    deps.logger.warn({ err, ...context }, warning);
  });
}
