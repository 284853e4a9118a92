// The alert state machine as a pure reducer: check outcomes and human actions in, the next
// state and the notifications to send out. The state is plain JSON so it can be stored as is.

export type CheckOutcome = "pass" | "fail" | "error" | "skipped";

/** Times are epoch milliseconds, so the state survives JSON unchanged. */
export type AlertEvent =
  | { type: "check"; at: number; outcome: CheckOutcome; detail?: string }
  | { type: "ack"; at: number; by?: string }
  | { type: "mute"; at: number; until: number; by?: string }
  | { type: "unmute"; at: number }
  | { type: "resolve"; at: number; by?: string }
  /** The alert is being deleted with its check, table or connection: whatever a mute held back,
   * whoever was told it opened is told it is over. */
  | { type: "removed"; at: number; by: string }
  | { type: "tick"; at: number };

/** "resolving" is still open to the outside world: it has seen successes, not yet enough. */
export type AlertStatus = "ok" | "failing" | "open" | "resolving";

export interface AlertState {
  alertId: string;
  status: AlertStatus;
  consecutiveFailures: number;
  consecutiveSuccesses: number;
  /** Number of the current (or last) incident; increases by one on every open. */
  sequence: number;
  openedAt: number | null;
  lastFailureAt: number | null;
  lastResolvedAt: number | null;
  /** The current incident opened within `flapWindowMs` of the previous resolve. */
  flapping: boolean;
  acknowledgedAt: number | null;
  acknowledgedBy: string | null;
  mutedUntil: number | null;
  /** Incident the outside world was last told is open (null: told nothing is open). */
  notifiedOpen: number | null;
  lastDetail: string | null;
}

export interface AlertConfig {
  /** Consecutive failures that open an incident. */
  openAfter: number;
  /** Consecutive successes that resolve it. */
  resolveAfter: number;
  /**
   * A re-open within this time of a resolve marks the incident flapping; a flapping incident
   * resolves only once it also went this long without a failure. So an alert sends at most
   * one opened/resolved pair per window however its check flaps.
   */
  flapWindowMs: number;
  /** Whether a check that could not run (connection refused, timeout) counts as a failure. */
  errorsAreFailures: boolean;
}

export const ALERT_DEFAULTS: AlertConfig = {
  openAfter: 2,
  resolveAfter: 2,
  flapWindowMs: 60 * 60 * 1000,
  errorsAreFailures: true,
};

export interface Notification {
  kind: "opened" | "resolved";
  alertId: string;
  sequence: number;
  /** `${alertId}:${kind}:${sequence}`: a notifier that stores sent keys never sends one twice. */
  dedupKey: string;
  at: number;
  /** Detail of the last failed check (for "resolved" too: what it was that recovered). */
  detail: string | null;
  flapping: boolean;
  /** Who resolved it by hand, when it was not the check. */
  resolvedBy: string | null;
}

export interface AlertTransition {
  state: AlertState;
  notifications: Notification[];
}

export function initialAlertState(alertId: string): AlertState {
  return {
    alertId, status: "ok", consecutiveFailures: 0, consecutiveSuccesses: 0, sequence: 0,
    openedAt: null, lastFailureAt: null, lastResolvedAt: null, flapping: false,
    acknowledgedAt: null, acknowledgedBy: null, mutedUntil: null, notifiedOpen: null, lastDetail: null,
  };
}

/**
 * Applies one event. Notifications are derived, not emitted by individual transitions: after
 * every event, unless muted, the outside world's picture (`notifiedOpen`) is reconciled with
 * the state. Hence "opened" and "resolved" go out at most once per incident; an incident that
 * opens and resolves inside a mute stays silent; one that opened during a mute and is still
 * open when the mute ends is notified then, once; one notified before the mute is not repeated.
 */
export function nextAlertState(
  state: AlertState,
  event: AlertEvent,
  config: Partial<AlertConfig> = {},
): AlertTransition {
  const c = { ...ALERT_DEFAULTS, ...config };
  const at = event.at;
  let s: AlertState = { ...state };
  let resolvedBy: string | null = null;
  // Any event carries the clock, so a mute ends on the first event at or after its end.
  if (s.mutedUntil !== null && at >= s.mutedUntil) s.mutedUntil = null;

  switch (event.type) {
    case "check":
      if (event.outcome === "pass") s = onSuccess(s, at, c);
      else if (event.outcome === "fail" || (event.outcome === "error" && c.errorsAreFailures)) {
        s = onFailure({ ...s, lastDetail: event.detail ?? s.lastDetail }, at, c);
      }
      // "skipped" (and ignored errors) only let time pass: counters stay as they are.
      break;
    case "ack":
      // The first acknowledgement of an incident stands: who took it on, and when, is not
      // rewritten by a second one (a retry, or someone else's click).
      if (isOpen(s) && s.acknowledgedAt === null) s = { ...s, acknowledgedAt: at, acknowledgedBy: event.by ?? null };
      break;
    case "mute":
      if (event.until > at) s.mutedUntil = event.until;
      break;
    case "unmute":
      s.mutedUntil = null;
      break;
    case "resolve":
      if (isOpen(s)) {
        s = closeIncident(s, at);
        resolvedBy = event.by ?? "manual";
      } else if (s.status === "failing") {
        s = { ...s, status: "ok", consecutiveFailures: 0 };
      }
      break;
    case "removed":
      s.mutedUntil = null;
      if (isOpen(s)) s = closeIncident(s, at);
      resolvedBy = event.by;
      break;
    case "tick":
      break;
  }
  return reconcile(s, at, resolvedBy);
}

function onFailure(s: AlertState, at: number, c: AlertConfig): AlertState {
  const failures = s.consecutiveFailures + 1;
  const next: AlertState = { ...s, consecutiveFailures: failures, consecutiveSuccesses: 0, lastFailureAt: at };
  if (isOpen(s)) return { ...next, status: "open" };
  if (failures < c.openAfter) return { ...next, status: "failing" };
  const flapping = s.lastResolvedAt !== null && at - s.lastResolvedAt < c.flapWindowMs;
  return { ...next, status: "open", sequence: s.sequence + 1, openedAt: at, flapping,
    acknowledgedAt: null, acknowledgedBy: null };
}

function onSuccess(s: AlertState, at: number, c: AlertConfig): AlertState {
  const successes = s.consecutiveSuccesses + 1;
  const next: AlertState = { ...s, consecutiveSuccesses: successes, consecutiveFailures: 0 };
  // A failure streak that never opened is forgotten at the first success: ok,fail,ok,fail never opens.
  if (!isOpen(s)) return { ...next, status: "ok" };
  const calmLongEnough = !s.flapping || s.lastFailureAt === null || at - s.lastFailureAt >= c.flapWindowMs;
  if (successes >= c.resolveAfter && calmLongEnough) return closeIncident(next, at);
  return { ...next, status: "resolving" };
}

function closeIncident(s: AlertState, at: number): AlertState {
  return { ...s, status: "ok", consecutiveFailures: 0, consecutiveSuccesses: 0, lastResolvedAt: at,
    flapping: false, acknowledgedAt: null, acknowledgedBy: null };
}

function isOpen(s: AlertState): boolean {
  return s.status === "open" || s.status === "resolving";
}

function reconcile(s: AlertState, at: number, resolvedBy: string | null): AlertTransition {
  if (s.mutedUntil !== null) return { state: s, notifications: [] };
  const shouldBeOpen = isOpen(s) ? s.sequence : null;
  if (s.notifiedOpen === shouldBeOpen) return { state: s, notifications: [] };
  const notifications: Notification[] = [];
  const make = (kind: Notification["kind"], sequence: number): Notification => ({
    kind, alertId: s.alertId, sequence, dedupKey: `${s.alertId}:${kind}:${sequence}`, at,
    detail: s.lastDetail, flapping: kind === "opened" && s.flapping,
    resolvedBy: kind === "resolved" ? resolvedBy : null,
  });
  if (s.notifiedOpen !== null) notifications.push(make("resolved", s.notifiedOpen));
  if (shouldBeOpen !== null) notifications.push(make("opened", shouldBeOpen));
  return { state: { ...s, notifiedOpen: shouldBeOpen }, notifications };
}

export type AlertPhase = "ok" | "failing" | "open" | "acknowledged" | "muted" | "resolving";

/** One word for a UI or an API listing; muting shows over acknowledgement over the status, while
 * the incident is open: a mute silences an incident, and once it is over the alert says so. */
export function alertPhase(s: AlertState, now: number): AlertPhase {
  if (isOpen(s) && s.mutedUntil !== null && now < s.mutedUntil) return "muted";
  if (s.status === "open" && s.acknowledgedAt !== null) return "acknowledged";
  return s.status;
}
