// Alerts: check outcomes and people's actions go through the alert reducer
// (alert-state.ts) inside a transaction that locks the alert row, and the notifications it
// emits are queued in the outbox in that same transaction, once per channel.

import type { Deps } from "../deps.js";
import { DomainError, notFound } from "../errors.js";
import type { CheckKind } from "../store/column-types.js";
import {
  alertsOfTable,
  enabledChannelIds,
  enqueueNotifications,
  getAlert,
  listAlerts,
  lockAlert,
  lockAlertOfCheck,
  saveAlert,
  type AlertFields,
  type Tx,
} from "../store/monitoring-alerts.js";
import { getMonitoredTable, saveSchemaSnapshot } from "../store/monitoring-tables.js";
import type { AlertRow, MonitoredTableRow } from "../store/schema.js";
import {
  alertPhase,
  initialAlertState,
  nextAlertState,
  type AlertConfig,
  type AlertEvent,
  type AlertState,
  type Notification,
} from "./alert-state.js";
import { deliverDueNotifications, type NotificationPayload } from "./notifiers.js";
import type { CheckStatus } from "./checks/types.js";

export type AlertListStatus = "open" | "acknowledged" | "muted" | "resolving" | "resolved";
/** What a listing filters on: a shown status, or "active", every alert whose incident is
 * still open whatever it shows (open, acknowledged, muted while open, resolving). */
export type AlertListFilter = AlertListStatus | "active";

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
const stateOf = (row: AlertRow) => row.state as unknown as AlertState;

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
    resolved_at: iso(row.resolvedAt),
    last_detail: row.lastDetail,
    updated_at: row.updatedAt.toISOString(),
  };
}

const date = (ms: number | null) => (ms === null ? null : new Date(ms));

function fieldsOf(state: AlertState): AlertFields {
  return {
    status: state.status,
    state: state as unknown as Record<string, unknown>,
    openedAt: date(state.openedAt),
    acknowledgedAt: date(state.acknowledgedAt),
    mutedUntil: date(state.mutedUntil),
    resolvedAt: date(state.lastResolvedAt),
    lastDetail: state.lastDetail,
  };
}

export function alertConfigOf(table: MonitoredTableRow): Partial<AlertConfig> {
  const config: Partial<AlertConfig> = {};
  if (table.alertConfig.open_after !== undefined) config.openAfter = table.alertConfig.open_after;
  if (table.alertConfig.resolve_after !== undefined) config.resolveAfter = table.alertConfig.resolve_after;
  return config;
}

/** `now`: what the event that caused the notification says, when a check run caused it. An
 * opened alert is detailed by its failure; a resolved one by what its check says now (the
 * failure it recovered from goes along as `last_failure`). */
function payloadOf(table: MonitoredTableRow, row: AlertRow, n: Notification, now: string | null): NotificationPayload {
  const name = table.schemaName ? `${table.schemaName}.${table.tableName}` : table.tableName;
  const opened = n.kind === "opened";
  const detail = opened ? n.detail : (now ?? (n.resolvedBy ? `resolved by ${n.resolvedBy}` : null));
  const text = opened
    ? `🔴 Pulse: ${row.checkKey} check failing on ${name}${n.flapping ? " (flapping)" : ""}: ${n.detail ?? "no detail"}`
    : `✅ Pulse: ${row.checkKey} check on ${name} recovered${n.resolvedBy ? ` (resolved by ${n.resolvedBy})` : ""}${now ? `: ${now}` : ""}`;
  return {
    event: opened ? "alert.opened" : "alert.resolved",
    text,
    alert_id: row.id,
    sequence: n.sequence,
    table: { id: table.id, schema: table.schemaName, name: table.tableName, connection_id: table.connectionId },
    check: row.checkKey,
    check_kind: row.checkKind,
    detail,
    ...(!opened && { last_failure: n.detail }),
    flapping: n.flapping,
    resolved_by: n.resolvedBy,
    at: new Date(n.at).toISOString(),
  };
}

/** Applies one event to a locked alert, saves it, and queues its notifications. */
async function applyEvent(
  deps: Deps,
  tx: Tx,
  table: MonitoredTableRow,
  row: AlertRow,
  event: AlertEvent,
): Promise<{ row: AlertRow; queued: number }> {
  const before = stateOf(row);
  const { state, notifications } = nextAlertState(before, event, alertConfigOf(table));
  const saved = await saveAlert(tx, row.id, fieldsOf(state));
  logTransition(deps, table, saved, before, state, event);
  if (notifications.length === 0) return { row: saved, queued: 0 };
  const channels = await enabledChannelIds(tx, table.ownerId);
  const queued = await enqueueNotifications(
    tx,
    notifications.flatMap((n) =>
      channels.map((channelId) => ({
        // The reducer's key names the notification; one delivery of it per channel.
        dedupKey: `${n.dedupKey}:channel:${channelId}`,
        channelId,
        alertId: row.id,
        payload: payloadOf(table, saved, n, event.type === "check" ? (event.detail ?? null) : null) as unknown as Record<string, unknown>,
        nextAttemptAt: new Date(deps.monitoring.now()),
      })),
    ),
  );
  return { row: saved, queued };
}

/** An incident opening (warn) or ending (info) leaves one line, muted or not. */
function logTransition(deps: Deps, table: MonitoredTableRow, row: AlertRow, before: AlertState, after: AlertState, event: AlertEvent) {
  const fields = { alert_id: row.id, table_id: table.id, connection_id: table.connectionId, check_key: row.checkKey, sequence: after.sequence };
  if (after.sequence !== before.sequence) {
    deps.logger.warn({ ...fields, flapping: after.flapping, detail: after.lastDetail }, "monitoring alert opened");
  } else if (after.lastResolvedAt !== before.lastResolvedAt) {
    deps.logger.info({ ...fields, resolved_by: event.type === "resolve" ? event.by : "check" }, "monitoring alert resolved");
  }
}

export interface FedOutcome {
  checkKey: string;
  checkKind: CheckKind;
  status: CheckStatus;
  message: string;
  at: number;
}

/**
 * Feeds a table run's outcomes to their alerts; returns how many notifications were queued.
 * A passing or skipped check with no alert, or with a quiet one, changes nothing worth a
 * write (only a success counter nobody reads while the alert is closed), so the common case
 * costs no transaction.
 */
export async function feedOutcomes(deps: Deps, table: MonitoredTableRow, outcomes: FedOutcome[]): Promise<number> {
  const existing = new Map((await alertsOfTable(deps.store.db, table.id)).map((a) => [a.checkKey, a]));
  let queued = 0;
  for (const outcome of outcomes) {
    const current = existing.get(outcome.checkKey);
    const quiet = !current || isQuiet(stateOf(current));
    if (quiet && (outcome.status === "pass" || outcome.status === "skipped")) continue;
    queued += await deps.store.db.transaction(async (tx) => {
      const initial = initialAlertState(UNNAMED);
      const row = await lockAlertOfCheck(
        tx,
        { ownerId: table.ownerId, tableId: table.id, checkKey: outcome.checkKey, checkKind: outcome.checkKind },
        fieldsOf(initial),
      );
      // The reducer names notifications after the alert: its row id, stable for good.
      const named = stateOf(row).alertId === UNNAMED ? await saveAlert(tx, row.id, fieldsOf({ ...stateOf(row), alertId: `alert:${row.id}` })) : row;
      const event: AlertEvent = { type: "check", at: outcome.at, outcome: outcome.status, detail: outcome.message };
      return (await applyEvent(deps, tx, table, named, event)).queued;
    });
  }
  return queued;
}

/** The alert id a new row's state carries until the row has its own id. */
const UNNAMED = "";

const isOpenState = (s: AlertState) => s.status === "open" || s.status === "resolving";

function isQuiet(s: AlertState): boolean {
  return s.status === "ok" && s.notifiedOpen === null && s.mutedUntil === null;
}

export async function listAlertsOf(
  deps: Deps,
  ownerId: number,
  filter: { status?: AlertListFilter | undefined; tableId?: number | undefined; limit?: number | undefined },
): Promise<PublicAlert[]> {
  const now = deps.monitoring.now();
  const rows = await listAlerts(deps.store.db, ownerId, { tableId: filter.tableId, limit: filter.status ? 5000 : (filter.limit ?? 500) });
  const matches = (row: AlertRow, alert: PublicAlert) =>
    filter.status === undefined || (filter.status === "active" ? isOpenState(stateOf(row)) : alert.status === filter.status);
  const matching = rows.flatMap((row) => {
    const alert = publicAlert(row, now);
    return matches(row, alert) ? [alert] : [];
  });
  return matching.slice(0, filter.limit ?? 500);
}

export async function getAlertOf(deps: Deps, ownerId: number, id: number): Promise<PublicAlert> {
  const row = await getAlert(deps.store.db, ownerId, id);
  if (!row) throw notFound("Alert");
  return publicAlert(row, deps.monitoring.now());
}

type Action = { type: "ack"; by: string } | { type: "mute"; until: number; by: string } | { type: "resolve"; by: string };

/** Acknowledge, mute or resolve one of the owner's alerts. Resolving a schema drift alert also
 * accepts the table's current shape: the next run takes it as the new snapshot. */
export async function actOnAlert(deps: Deps, ownerId: number, id: number, action: Action): Promise<PublicAlert> {
  const now = deps.monitoring.now();
  const result = await deps.store.db.transaction(async (tx) => {
    const row = await lockAlert(tx, ownerId, id);
    if (!row) throw notFound("Alert");
    const state = stateOf(row);
    const open = state.status === "open" || state.status === "resolving";
    if (action.type === "mute" && action.until <= now) {
      throw new DomainError("invalid_input", "until must be in the future", { errors: [{ path: "body.until", message: "must be in the future" }] });
    }
    if ((action.type === "ack" || action.type === "resolve") && !open) {
      throw new DomainError("conflict", `This alert is not open (it is ${publicAlert(row, now).status})`);
    }
    const table = await getMonitoredTable(tx, ownerId, row.tableId);
    if (!table) throw notFound("Alert");
    const { row: saved, queued } = await applyEvent(deps, tx, table, row, { ...action, at: now });
    if (action.type === "resolve" && row.checkKind === "schema_drift") await saveSchemaSnapshot(tx, table.id, null);
    return { saved, queued };
  });
  if (result.queued > 0) {
    await deliverDueNotifications(deps).catch((err: unknown) => deps.logger.error({ err }, "delivering notifications failed"));
  }
  return publicAlert(result.saved, now);
}
