// Renews a table's lease while its checks run, however long they take, so no other instance
// claims a run still going, and ends it once they are done, trying again while the store is
// away: shared by the scheduler and manual runs.

import { setTimeout as sleep } from "node:timers/promises";

import type { Deps } from "../deps.js";
import { renewLease } from "../store/monitoring-tables.js";

/** A lease kept while a run goes. */
export interface KeptLease {
  /** Stops renewing it; resolves once a renewal under way has settled, so that until() is
   * what the store holds. */
  stop(): Promise<void>;
  /** The lease's end as last set: what tells this run's lease from a later one of the same
   * owner (a manual run on the same instance). Null while a renewal's outcome is unknown. */
  until(): Date | null;
}

/**
 * Renews `owner`'s lease on table `id`, taken until `until`, every `renewEveryMs` (default: a
 * third of MONITOR_LEASE_SECONDS, so two renewals may fail before it expires). One renewal at a
 * time: a slow store delays the next instead of piling them up.
 */
export function keepLease(deps: Deps, args: { id: number; owner: string; until: Date; renewEveryMs?: number | undefined }): KeptLease {
  const m = deps.monitoring;
  const renewEveryMs = args.renewEveryMs ?? (m.settings.leaseSeconds * 1000) / 3;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let until: Date | null = args.until;
  let renewing: Promise<void> | undefined;
  const renew = async () => {
    const next = new Date(m.now() + m.settings.leaseSeconds * 1000);
    try {
      const fate = await renewLease(deps.store.db, { id: args.id, owner: args.owner, leaseUntil: next });
      if (fate === "kept") until = next;
      else if (fate === "lost" && !stopped) deps.logger.warn({ table_id: args.id }, "lease lost while the checks ran: another instance may run the table too");
    } catch (err) {
      // It may have been renewed all the same.
      until = null;
      if (!stopped) deps.logger.error({ err, table_id: args.id }, "renewing a lease failed; retrying at the next renewal");
    }
    if (!stopped) timer = setTimeout(renewNow, renewEveryMs);
  };
  const renewNow = () => {
    renewing = renew().finally(() => (renewing = undefined));
  };
  timer = setTimeout(renewNow, renewEveryMs);
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await renewing;
    },
    until: () => until,
  };
}

/** The waits between tries to end a lease: doubling from the first, up to the last. */
const END_RETRY_FIRST_MS = 500;
const END_RETRY_MAX_MS = 30_000;

/**
 * Ends `lease` (of table `id`) with `end`, given the lease's end as last set (null: unknown),
 * and while the store fails, tries again, backing off, for as long as the lease itself would
 * have lasted (MONITOR_LEASE_SECONDS): a store that was away for seconds would otherwise leave
 * the table unscheduled, and refused to manual runs, until the lease expired (five minutes by
 * default). `end` must touch only the lease that ends so (same owner and end): a try that did
 * end it, its answer lost, may be followed by a new lease of the same owner, which a retry must
 * leave alone. So without a known end there is one try. Stops early when `signal` aborts (the
 * scheduler stopping: the lease then expires). Resolves to what `end` answered, or undefined
 * if it never succeeded; never rejects.
 */
export async function endLease<T>(deps: Deps, id: number, lease: KeptLease, end: (until: Date | null) => Promise<T>, signal?: AbortSignal): Promise<T | undefined> {
  const deadline = Date.now() + deps.monitoring.settings.leaseSeconds * 1000;
  const until = lease.until();
  for (let wait = END_RETRY_FIRST_MS; ; wait = Math.min(wait * 2, END_RETRY_MAX_MS)) {
    try {
      return await end(until);
    } catch (err) {
      const givingUp = signal?.aborted === true || until === null || Date.now() + wait >= deadline;
      deps.logger.error({ err, table_id: id }, givingUp ? "ending a lease failed; it will expire" : "ending a lease failed; trying again");
      if (givingUp) return undefined;
    }
    try {
      await sleep(wait, undefined, { signal, ref: false });
    } catch {
      deps.logger.warn({ table_id: id }, "stopped trying to end a lease; it will expire");
      return undefined;
    }
  }
}
