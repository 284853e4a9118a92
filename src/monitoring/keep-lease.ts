// Renews a table's lease while its checks run, however long they take, so no other instance
// claims a run still going: shared by the scheduler and manual runs.

import type { Deps } from "../deps.js";
import { renewLease } from "../store/monitoring-tables.js";

/**
 * Renews `owner`'s lease on table `id` every `renewEveryMs` (default: a third of
 * MONITOR_LEASE_SECONDS, so two renewals may fail before it expires). One renewal at a time:
 * a slow store delays the next instead of piling them up. Returns the function that stops it.
 */
export function keepLease(deps: Deps, args: { id: number; owner: string; renewEveryMs?: number | undefined }): () => void {
  const m = deps.monitoring;
  const renewEveryMs = args.renewEveryMs ?? (m.settings.leaseSeconds * 1000) / 3;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const renew = async () => {
    try {
      const kept = await renewLease(deps.store.db, { id: args.id, owner: args.owner, leaseUntil: new Date(m.now() + m.settings.leaseSeconds * 1000) });
      if (!kept && !stopped) deps.logger.warn({ table_id: args.id }, "lease lost while the checks ran: another instance may run the table too");
    } catch (err) {
      if (!stopped) deps.logger.error({ err, table_id: args.id }, "renewing a lease failed; retrying at the next renewal");
    }
    if (!stopped) timer = setTimeout(() => void renew(), renewEveryMs);
  };
  timer = setTimeout(() => void renew(), renewEveryMs);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
