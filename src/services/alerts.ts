// Alert verbs behind /api/alerts: list, show, and acknowledge, mute, unmute or resolve one of the
// owner's alerts. An action goes through the same reducer and outbox as a check outcome
// (monitoring/alerts.ts); the notifications it queues are sent right away.

import type { Deps } from "../deps.js";
import { DomainError, notFound } from "../errors.js";
import { alertPhase, type AlertState } from "../monitoring/alert-state.js";
import { applyEvent, stateOf } from "../monitoring/alerts.js";
import { deliverSoon } from "../monitoring/notifiers.js";
import { getAlert, listAlerts, lockAlert, type AlertListFilter } from "../store/monitoring-alerts.js";
import { lockMonitoredTable, saveSchemaSnapshot } from "../store/monitoring-tables.js";
import type { PageBefore } from "../store/page-before.js";
import type { AlertRow } from "../store/schema.js";
import { countTry } from "../rate-limits.js";

export type AlertListStatus = Exclude<AlertListFilter, "active">;
export type { AlertListFilter };

export interface PublicAlert {
  id: number;
  table_id: number;
  check: string;
  check_kind: string;
  status: AlertListStatus | "failing" | "ok";
  sequence: number;
  flapping: boolean;
  consecutive_failures: number;
  opened_at: string | null;
  acknowledged_at: string | null;
  acknowledged_by: string | null;
  muted_until: string | null;
  resolved_at: string | null;
  last_detail: string | null;
  updated_at: string;
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function publicAlert(row: AlertRow, now: number): PublicAlert {
  const state = stateOf(row);
  const phase = alertPhase(state, now);
  return {
    id: row.id,
    table_id: row.tableId,
    check: row.checkKey,
    check_kind: row.checkKind,
    status: phase === "ok" && state.sequence > 0 ? "resolved" : phase,
    sequence: state.sequence,
    flapping: state.flapping,
    consecutive_failures: state.consecutiveFailures,
    opened_at: iso(row.openedAt),
    acknowledged_at: iso(row.acknowledgedAt),
    acknowledged_by: state.acknowledgedBy,
    muted_until: iso(row.mutedUntil),
    // The last resolution, until the incident opens again.
    resolved_at: isOpenState(state) ? null : iso(row.resolvedAt),
    last_detail: row.lastDetail,
    updated_at: row.updatedAt.toISOString(),
  };
}

const isOpenState = (s: AlertState) => s.status === "open" || s.status === "resolving";

/** Alerts a list answers when it names no limit: the newest ones (GET /api/alerts documents it). */
export const DEFAULT_ALERTS_LISTED = 500;

export async function listAlertsOf(
  deps: Deps,
  ownerId: number,
  filter: {
    status?: AlertListFilter | undefined;
    tableId?: number | undefined;
    /** Only these tables' alerts (what a limited credential reaches); null or absent: all. */
    tableIds?: ReadonlySet<number> | null | undefined;
    /** Where the previous page ended (its last alert's opened_at and id). */
    before?: PageBefore | undefined;
    limit?: number | undefined;
  },
): Promise<PublicAlert[]> {
  const now = deps.monitoring.now();
  const rows = await listAlerts(deps.store.db, ownerId, {
    status: filter.status,
    now: new Date(now),
    tableId: filter.tableId,
    tableIds: filter.tableIds ? [...filter.tableIds] : undefined,
    before: filter.before,
    limit: filter.limit ?? DEFAULT_ALERTS_LISTED,
  });
  return rows.map((row) => publicAlert(row, now));
}

export async function getAlertOf(deps: Deps, ownerId: number, id: number): Promise<PublicAlert> {
  const row = await getAlert(deps.store.db, ownerId, id);
  if (!row) throw notFound("Alert");
  return publicAlert(row, deps.monitoring.now());
}

type Action = { type: "ack"; by: string } | { type: "mute"; until: number; by: string } | { type: "unmute" } | { type: "resolve"; by: string };

/** Acknowledge, mute, unmute or resolve one of the owner's alerts. Resolving a schema drift alert also
 * accepts the table's current shape: the next run takes it as the new snapshot. */
export async function actOnAlert(deps: Deps, ownerId: number, id: number, action: Action): Promise<PublicAlert> {
  // A resolve by hand ends an incident however its check flaps, and the next failing run opens
  // it again, notifying every channel: resolves without end sent thousands of notifications a
  // minute where the flap damping allows a pair an hour. An unmute may notify too. Acknowledging
  // and muting, which quiet an outage, are not counted.
  if (action.type === "resolve" || action.type === "unmute") {
    const perMinute = deps.config.monitor.alertActionsPerMinute;
    await countTry(deps, `alert-actions:user:${ownerId}`, { max: perMinute, windowSeconds: 60 }, `At most ${perMinute} resolves and unmutes per minute (MONITOR_ALERT_ACTIONS_PER_MINUTE); try again shortly`);
  }
  const now = deps.monitoring.now();
  const result = await deps.store.db.transaction(async (tx) => {
    // Its table first, then the alert, the order runs and removals lock them in (a schema
    // drift resolve writes the table): the other way round, a removal and this deadlocked.
    const seen = await getAlert(tx, ownerId, id);
    const table = seen && (await lockMonitoredTable(tx, ownerId, seen.tableId));
    const row = table && (await lockAlert(tx, ownerId, id));
    if (!table || !row) throw notFound("Alert");
    const state = stateOf(row);
    const open = state.status === "open" || state.status === "resolving";
    if (action.type === "mute" && action.until <= now) {
      throw new DomainError("invalid_input", "until must be in the future", { errors: [{ path: "body.until", message: "must be in the future" }] });
    }
    if ((action.type === "ack" || action.type === "resolve") && !open) {
      throw new DomainError("conflict", `This alert is not open (it is ${publicAlert(row, now).status})`);
    }
    const { row: saved, queued, logged } = await applyEvent(deps, tx, table, row, { ...action, at: now });
    if (action.type === "resolve" && row.checkKind === "schema_drift") await saveSchemaSnapshot(tx, table.id, null);
    return { saved, queued, logged };
  });
  result.logged();
  if (result.queued > 0) deliverSoon(deps);
  return publicAlert(result.saved, now);
}
