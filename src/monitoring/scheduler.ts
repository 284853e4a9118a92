// The scheduler of one instance: every tick it leases due tables from the metadata store
// (FOR UPDATE SKIP LOCKED, so each due table goes to one instance however many run), renews
// the lease while a table's checks run, and then sets the next run from now: plus the interval
// and jitter, or the cron schedule's next time (schedule.ts), so a long outage costs one
// catch-up run, not one per missed slot. It also drains the notification outbox and prunes
// old check runs and audit records.
// Connection affinity: it claims no table of a connection another instance holds a live lease
// on, so one instance at a time runs a connection's checks and its monitoring budget, which
// lives in the process, is the whole cluster's (src/store/monitoring-tables.ts).

import type { Deps } from "../deps.js";
import { pruneAuditRecords } from "../store/audit.js";
import { pruneNotifications } from "../store/monitoring-alerts.js";
import { orphanedRunTables, pruneCheckRuns, purgeOrphanedRuns } from "../store/monitoring-runs.js";
import { claimDueTables, completeLease, releaseLease } from "../store/monitoring-tables.js";
import type { MonitoredTableRow } from "../store/schema.js";
import { isStoreUnavailable } from "../store/unavailable.js";
import { settlesWithin } from "../within.js";
import { endLease, keepLease, type KeptLease } from "./keep-lease.js";
import { deliverDueNotifications } from "./notifiers.js";
import { runTableChecks } from "./run-table.js";
import { nextRunAfter } from "./schedule.js";

export interface TickReport {
  /** Tables this instance leased in this tick (and ran, once the tick resolves). */
  claimed: number[];
}

export interface Scheduler {
  readonly instanceId: string;
  /** Tables whose checks are running in this instance right now. */
  readonly running: number;
  /** Ticks every MONITOR_TICK_MS until stopped. */
  start(): void;
  /** One tick, resolving once the tables it claimed have run (tests drive the scheduler so). */
  tick(): Promise<TickReport>;
  /** Claims nothing more and waits for running checks, at most `timeoutMs`; the runs still going
   * are then stopped (their statements too, at the database) and their tables released for
   * another instance, within CANCEL_GRACE_MS more. One that does not stop even so is left to
   * its lease, which expires. */
  stop(timeoutMs?: number): Promise<void>;
}

export interface SchedulerOptions {
  /** Default: the process's (deps.monitoring.instanceId), which manual runs lease under too. */
  instanceId?: string;
  /** How often a running table's lease is renewed, in real time (default: a third of
   * MONITOR_LEASE_SECONDS, so two renewals may fail before it expires). */
  renewEveryMs?: number;
  /** Rows per batch and batches per prune (default 10,000 and 100; tests take fewer). */
  prune?: { batchRows: number; maxBatches: number };
}

/** What stop() gives the runs it stops to end (a statement stopped at its database, the lease
 * released), past its `timeoutMs`. */
export const CANCEL_GRACE_MS = 2_000;

const PRUNE_EVERY_MS = 3_600_000;
/** The audit trail and the check runs may each grow by millions of rows a day: a prune deletes
 * up to PRUNE_MAX_BATCHES of each, and one that leaves a backlog is followed by another at the
 * next tick, until the backlog is gone. */
const PRUNE_BATCH = 10_000;
const PRUNE_MAX_BATCHES = 100;

export function createScheduler(deps: Deps, options: SchedulerOptions = {}): Scheduler {
  const m = deps.monitoring;
  const s = m.settings;
  const instanceId = options.instanceId ?? m.instanceId;
  const { batchRows, maxBatches } = options.prune ?? { batchRows: PRUNE_BATCH, maxBatches: PRUNE_MAX_BATCHES };
  const inFlight = new Set<Promise<void>>();
  /** Stops renewing the lease of each table running here. */
  const renewals = new Set<() => Promise<void>>();
  let timer: NodeJS.Timeout | undefined;
  let started = false;
  let stopping = false;
  /** Aborted when the scheduler stops: a lease not yet ended is left to expire. */
  const halted = new AbortController();
  /** Aborted when stop() has waited its bound for the runs still going: they stop. */
  const cancelled = new AbortController();
  let claiming: Promise<{ claimed: number[]; runs: Promise<void>[] }> | null = null;
  /** Delivering the outbox and pruning, each at most once at a time, beside the claims: an
   * hour's pruning (hundreds of batches) or a slow webhook never delays a due table. */
  const chores = new Map<string, Promise<void>>();
  let prunedAt = 0;
  /** The last claim filled every free slot, so more tables may be due. */
  let backlog = false;
  /** The runs the last claim started that are still going. */
  let lastClaimed = new Set<Promise<void>>();
  let housekeptAt = Number.NEGATIVE_INFINITY;

  /** Keeps this instance's lease on `table`, as claimed, while its checks run; stop() ends
   * the renewals early. */
  function keepLeaseHere(table: MonitoredTableRow): KeptLease {
    const lease = keepLease(deps, { id: table.id, owner: instanceId, until: table.leaseUntil!, renewEveryMs: options.renewEveryMs });
    const stop = () => {
      renewals.delete(stop);
      return lease.stop();
    };
    renewals.add(stop);
    return { stop, until: lease.until };
  }

  async function runLeased(table: MonitoredTableRow): Promise<void> {
    const startedAt = m.now();
    const lease = keepLeaseHere(table);
    /** Stopped by stop() before its outcomes were recorded (one that got past its checks ends as usual). */
    let stopped = false;
    /** Its outcomes not recorded, the metadata store failing under them (a restart, a failover). */
    let unrecorded = false;
    try {
      await runTableChecks(deps, table, "schedule", { apiKeyId: null, signal: cancelled.signal });
    } catch (err) {
      stopped = cancelled.signal.aborted;
      unrecorded = !stopped && isStoreUnavailable(err);
      if (unrecorded) deps.logger.warn({ err, table_id: table.id }, "the metadata store failed under a monitored table's run; the table stays due");
      else if (!stopped) deps.logger.error({ err, table_id: table.id }, "running a monitored table failed");
    } finally {
      await lease.stop();
    }
    if (stopped || unrecorded) {
      // Its outcomes unrecorded: still due. Stopped with the instance, another instance's to run
      // at its next tick rather than once the lease expires (one try: the store closes next).
      // Lost to the store, this instance's again at the first tick the store answers: scheduled
      // an interval on, a failing check would tell nobody until then, and leave no trace of the
      // run. Tried again while the store is away, as a completed run's lease is.
      await endLease(deps, table.id, lease, (leaseUntil) => releaseLease(deps.store.db, { id: table.id, owner: instanceId, leaseUntil }), halted.signal);
      return;
    }
    const now = m.now();
    const kept = await endLease(
      deps,
      table.id,
      lease,
      (leaseUntil) =>
        completeLease(deps.store.db, {
          id: table.id,
          owner: instanceId,
          lastRunAt: new Date(startedAt),
          claimed: table,
          // A schedule's next time after the one just run, even if the clock was stepped back
          // meanwhile (which made the same slot due again); an interval's from now.
          nextRunAfter: (timing) => nextRunAfter(m, timing, timing.schedule === null ? now : Math.max(now, table.nextRunAt.getTime())),
          now: new Date(now),
          leaseUntil,
        }),
      halted.signal,
    );
    if (kept === "lost") deps.logger.warn({ table_id: table.id }, "lease lost before the run finished (its renewals failed for longer than MONITOR_LEASE_SECONDS)");
  }

  function track(run: Promise<void>): Promise<void> {
    inFlight.add(run);
    void run.finally(() => {
      inFlight.delete(run);
      lastClaimed.delete(run);
      // More tables were due than there were slots: refill now rather than at the next tick,
      // so throughput follows how fast checks run, not MONITOR_MAX_CONCURRENCY per tick. Once
      // half the slots are free, not at every finished run: a claim is a transaction of four
      // statements on the store (it waits its turn behind other instances' claims), and
      // claiming in halves makes that one per several runs. Or once all the last claim started
      // are done: runs that outlast it (a database where statements wait on a lock, to the
      // run's timeout) may hold more than half the slots for minutes, and the slots left must
      // not wait for a tick each time.
      if (started && !stopping && backlog && (inFlight.size <= s.maxConcurrency / 2 || lastClaimed.size === 0)) void claimAndStart();
    });
    return run;
  }

  /** Starts `work` unless the chore is still going from an earlier tick. */
  function chore(name: string, work: () => Promise<void>): void {
    if (chores.has(name)) return;
    const done = work()
      .catch((err: unknown) => deps.logger.error({ err }, `${name} failed`))
      .finally(() => chores.delete(name));
    chores.set(name, done);
  }

  function housekeeping(now: number): void {
    chore("delivering notifications", async () => {
      await deliverDueNotifications(deps);
    });
    if (now - prunedAt < PRUNE_EVERY_MS) return;
    prunedAt = now;
    chore("pruning", async () => {
      const db = deps.store.db;
      const runsBefore = new Date(now - s.runRetentionDays * 86_400_000);
      const auditBefore = new Date(now - deps.config.audit.retentionDays * 86_400_000);
      const caughtUp = [
        await inBatches("pruning check runs", () => pruneCheckRuns(db, runsBefore, batchRows)),
        await inBatches("purging the runs of deleted tables", async () => {
          const gone = await orphanedRunTables(db);
          return gone.length === 0 ? 0 : purgeOrphanedRuns(db, gone, batchRows);
        }),
        await inBatches("pruning sent notifications", () => pruneNotifications(db, runsBefore, batchRows)),
        await inBatches("pruning audit records", () => pruneAuditRecords(db, auditBefore, batchRows)),
      ];
      // A backlog left: prune again at the next tick, not in an hour.
      if (caughtUp.includes(false)) prunedAt = Number.NEGATIVE_INFINITY;
    });
  }

  /** Deletes by `batch` while whole batches go, at most `maxBatches`, and stops as soon as the
   * scheduler does: a shutdown never waits for a backlog (the audit trail's last records are
   * written after this). Whether nothing was left (a failure counts as caught up: it is logged,
   * and tried again in an hour). */
  async function inBatches(what: string, batch: () => Promise<number>): Promise<boolean> {
    try {
      for (let i = 0; i < maxBatches && !stopping; i++) if ((await batch()) < batchRows) return true;
      return false;
    } catch (err) {
      deps.logger.error({ err }, `${what} failed`);
      return true;
    }
  }

  /** Leases as many due tables as there are free slots and starts them. */
  async function claimOnce(): Promise<{ claimed: number[]; runs: Promise<void>[] }> {
    try {
      if (stopping) return { claimed: [], runs: [] };
      const free = s.maxConcurrency - inFlight.size;
      const now = m.now();
      const housekeepingDue = !started || now - housekeptAt >= s.tickMs;
      let runs: Promise<void>[] = [];
      let tables: MonitoredTableRow[] = [];
      if (free > 0) {
        tables = await claimDueTables(deps.store.db, {
          owner: instanceId,
          now: new Date(now),
          leaseUntil: new Date(now + s.leaseSeconds * 1000),
          limit: free,
        });
        backlog = tables.length === free;
        runs = tables.map((t) => track(runLeased(t)));
        lastClaimed = new Set(runs);
      }
      // Refills between ticks skip the outbox and pruning: once per tick is enough. A tick
      // with every slot taken still has them: retries and pruning do not wait for a slot.
      if (housekeepingDue) {
        housekeptAt = now;
        housekeeping(now);
      }
      return { claimed: tables.map((t) => t.id), runs };
    } catch (err) {
      deps.logger.error({ err }, "scheduler tick failed");
      return { claimed: [], runs: [] };
    }
  }

  /** One claim at a time: a tick asked for while one is claiming shares it. */
  function claimAndStart(): Promise<{ claimed: number[]; runs: Promise<void>[] }> {
    if (claiming) return claiming;
    const current = claimOnce();
    claiming = current;
    void current.finally(() => {
      if (claiming === current) claiming = null;
    });
    return current;
  }

  const loop = async () => {
    await claimAndStart();
    if (!stopping) timer = setTimeout(() => void loop(), s.tickMs);
  };

  return {
    instanceId,
    get running() {
      return inFlight.size;
    },
    start() {
      if (started || stopping) return;
      started = true;
      deps.logger.info({ instance: instanceId, tick_ms: s.tickMs }, "monitoring scheduler started");
      timer = setTimeout(() => void loop(), 0);
    },
    async tick() {
      const { claimed, runs } = await claimAndStart();
      await Promise.all([...runs, ...chores.values()]);
      return { claimed };
    },
    async stop(timeoutMs = s.stopTimeoutMs) {
      stopping = true;
      halted.abort();
      clearTimeout(timer);
      await claiming;
      // Chores end at their next batch once stopping; a webhook or a statement under way is
      // waited for like a running check.
      if (inFlight.size === 0 && chores.size === 0) return;
      if (await settlesWithin(Promise.allSettled([...inFlight, ...chores.values()]), timeoutMs)) return;
      const running = inFlight.size;
      if (running === 0) return void deps.logger.warn({ chores: [...chores.keys()] }, "scheduler stopped with chores still running");
      cancelled.abort();
      if (await settlesWithin(Promise.allSettled([...inFlight]), CANCEL_GRACE_MS)) {
        deps.logger.info({ stopped: running, chores: [...chores.keys()] }, "scheduler stopped the checks still running; their tables are released for another instance");
        return;
      }
      // The store closes next: leave the leases to expire so another instance takes over.
      for (const stopRenewing of [...renewals]) void stopRenewing();
      deps.logger.warn({ running: inFlight.size, chores: [...chores.keys()] }, "scheduler stopped with checks still running; their leases will expire");
    },
  };
}
