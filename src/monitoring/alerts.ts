// Alerts: check outcomes and people's actions go through the alert reducer
// (alert-state.ts) inside a transaction that locks the alert row, and the notifications it
// emits are queued in the outbox in that same transaction, once per channel. The verbs that
// list alerts and act on them are in services/alerts.ts.

import type { Deps } from "../deps.js";
import type { CheckKind } from "../store/column-types.js";
import {
  alertsOfTable,
  enabledChannelIds,
  enqueueNotifications,
  lockAlertOfCheck,
  lockChecksOfTable,
  saveAlert,
  type AlertFields,
  type Tx,
} from "../store/monitoring-alerts.js";
import type { AlertRow, MonitoredTableRow } from "../store/schema.js";
import { violatesForeignKey } from "../store/unavailable.js";
import {
  initialAlertState,
  nextAlertState,
  type AlertConfig,
  type AlertEvent,
  type AlertState,
  type Notification,
} from "./alert-state.js";
import { deliverSoon, type NotificationPayload } from "./notifiers.js";
import { checkKey } from "./check-config.js";
import type { CheckStatus } from "./checks/types.js";

export const stateOf = (row: AlertRow) => row.state as unknown as AlertState;

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

/** Applies one event to a locked alert, saves it, and queues its notifications. `logged` writes
 * the transition's log line: call it once the transaction has committed, so no line tells of
 * an alert that a rollback undid. */
export async function applyEvent(
  deps: Deps,
  tx: Tx,
  table: MonitoredTableRow,
  row: AlertRow,
  event: AlertEvent,
  /** The alert is deleted in this transaction: its notifications are queued apart from it, or
   * the delete's cascade would take them along. */
  options: { alertDeleted?: boolean } = {},
): Promise<{ row: AlertRow; queued: number; logged: () => void }> {
  const before = stateOf(row);
  const { state, notifications } = nextAlertState(before, event, alertConfigOf(table));
  const saved = await saveAlert(tx, row.id, fieldsOf(state));
  const logged = () => logTransition(deps, table, saved, before, state, event);
  if (notifications.length === 0) return { row: saved, queued: 0, logged };
  const channels = await enabledChannelIds(tx, table.ownerId);
  const queued = await enqueueNotifications(
    tx,
    notifications.flatMap((n) =>
      channels.map((channelId) => ({
        // The reducer's key names the notification; one delivery of it per channel.
        dedupKey: `${n.dedupKey}:channel:${channelId}`,
        channelId,
        alertId: options.alertDeleted ? null : row.id,
        payload: payloadOf(table, saved, n, event.type === "check" ? (event.detail ?? null) : null) as unknown as Record<string, unknown>,
        nextAttemptAt: new Date(deps.monitoring.now()),
      })),
    ),
  );
  return { row: saved, queued, logged };
}

/** What a removal found in its transaction: the alerts it is about to delete (locked, with their
 * tables), what deletes them (`by`, as the resolution will say), and the delete, whose answer
 * is the removal's. */
export interface Removal<T> {
  doomed: readonly { alert: AlertRow; table: MonitoredTableRow }[];
  by: string;
  remove: () => Promise<T>;
}

/**
 * Runs a removal that deletes alerts with their check, table or connection, in one transaction:
 * `plan` locks what it removes and returns it; each alert whose incident a receiver was told of
 * is then resolved (by what removed it, whatever a mute held back) before the delete, so a
 * receiver told that it opened is told that it is over, rather than keep an incident open for good. Its notifications are queued apart from the
 * alert (the delete's cascade would take them along) and sent once the transaction commits.
 */
export async function removeWithAlerts<T>(deps: Deps, plan: (tx: Tx) => Promise<Removal<T>>): Promise<T> {
  const done = await deps.store.db.transaction(async (tx) => {
    const removal = await plan(tx);
    const at = deps.monitoring.now();
    let queued = 0;
    const lines: (() => void)[] = [];
    for (const { alert, table } of removal.doomed) {
      // Only an incident someone was told of (open, muted since, or over under a mute) has
      // anyone to tell.
      if (stateOf(alert).notifiedOpen === null) continue;
      const applied = await applyEvent(deps, tx, table, alert, { type: "removed", at, by: removal.by }, { alertDeleted: true });
      queued += applied.queued;
      lines.push(applied.logged);
    }
    return { result: await removal.remove(), queued, lines };
  });
  done.lines.forEach((logged) => logged());
  if (done.queued > 0) deliverSoon(deps);
  return done.result;
}

/** An incident opening (warn) or ending (info) leaves one line, muted or not. */
function logTransition(deps: Deps, table: MonitoredTableRow, row: AlertRow, before: AlertState, after: AlertState, event: AlertEvent) {
  const fields = { alert_id: row.id, table_id: table.id, connection_id: table.connectionId, check_key: row.checkKey, sequence: after.sequence };
  if (after.sequence !== before.sequence) {
    // Without the check's message, as the check's own line (run-table.ts logRun).
    deps.logger.warn({ ...fields, flapping: after.flapping }, "monitoring alert opened");
  } else if (after.lastResolvedAt !== before.lastResolvedAt) {
    deps.logger.info({ ...fields, resolved_by: event.type === "resolve" || event.type === "removed" ? event.by : "check" }, "monitoring alert resolved");
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
    const apply = () => deps.store.db.transaction(async (tx) => {
      // A check removed from the table while it ran (its alert went with it) opens none again.
      // (A table deleted meanwhile fails below, on the alert's key to it: run-table drops the run.)
      const checks = await lockChecksOfTable(tx, table.id);
      if (checks && !checks.some((check) => checkKey(check) === outcome.checkKey)) return NOTHING_APPLIED;
      const initial = initialAlertState(UNNAMED);
      const row = await lockAlertOfCheck(
        tx,
        { ownerId: table.ownerId, tableId: table.id, checkKey: outcome.checkKey, checkKind: outcome.checkKind },
        fieldsOf(initial),
      );
      // The reducer names notifications after the alert: its row id, stable for good.
      const named = stateOf(row).alertId === UNNAMED ? await saveAlert(tx, row.id, fieldsOf({ ...stateOf(row), alertId: `alert:${row.id}` })) : row;
      const event: AlertEvent = { type: "check", at: outcome.at, outcome: outcome.status, detail: outcome.message };
      return applyEvent(deps, tx, table, named, event);
    });
    // A channel deleted between the read of the owner's channels and the insert of its
    // notification: once more, with the channels as they are now.
    const applied = await apply().catch((err: unknown) => {
      if (!violatesForeignKey(err, "sent_notifications_channel_id_notification_channels_id_fk")) throw err;
      return apply();
    });
    applied.logged();
    queued += applied.queued;
  }
  return queued;
}

/** What feeding an outcome of a check the table no longer has comes to. */
const NOTHING_APPLIED: { queued: number; logged: () => void } = { queued: 0, logged: () => undefined };

/** The alert id a new row's state carries until the row has its own id. */
const UNNAMED = "";

function isQuiet(s: AlertState): boolean {
  return s.status === "ok" && s.notifiedOpen === null && s.mutedUntil === null;
}

