import { describe, expect, it } from "vitest";
import {
  ALERT_DEFAULTS,
  alertPhase,
  initialAlertState,
  nextAlertState,
  type AlertConfig,
  type AlertEvent,
  type AlertState,
  type CheckOutcome,
  type Notification,
} from "../../src/monitoring/alert-state.js";

const MIN = 60_000;
const HOUR = 60 * MIN;
const T0 = Date.UTC(2025, 0, 6, 9, 0);
const OUTCOMES: Record<string, CheckOutcome> = { P: "pass", F: "fail", E: "error", S: "skipped" };

/** Checks every 5 minutes from `start`: "FFPP" is fail, fail, pass, pass. */
function checks(pattern: string, start = T0, every = 5 * MIN): AlertEvent[] {
  return [...pattern].map((c, i) => ({ type: "check", at: start + i * every, outcome: OUTCOMES[c]!, detail: `check ${i}` }));
}

function play(events: readonly AlertEvent[], config: Partial<AlertConfig> = {}, from = initialAlertState("orders-rows")) {
  let state = from;
  const notifications: Notification[] = [];
  for (const event of events) {
    const next = nextAlertState(state, event, config);
    state = next.state;
    notifications.push(...next.notifications);
  }
  return { state, notifications, kinds: notifications.map((n) => n.kind) };
}

describe("check outcomes", () => {
  it.each<[string, string, Partial<AlertConfig>, string[], AlertState["status"]]>([
    ["nothing", "", {}, [], "ok"],
    ["one failure only starts counting", "F", {}, [], "failing"],
    ["two failures open and notify", "FF", {}, ["opened"], "open"],
    ["more failures do not notify again", "FFFFF", {}, ["opened"], "open"],
    ["a flapping check never opens with N=2", "FPFPFPFPFPFP", {}, [], "ok"],
    ["one success after opening is not enough", "FFP", {}, ["opened"], "resolving"],
    ["two successes resolve and notify once", "FFPPPP", {}, ["opened", "resolved"], "ok"],
    ["a failure while resolving goes back to open, silently", "FFPFPP", {}, ["opened", "resolved"], "ok"],
    ["skipped checks change nothing", "FSSFSPSP", {}, ["opened", "resolved"], "ok"],
    ["errors count as failures by default", "EE", {}, ["opened"], "open"],
    ["errors mixed with failures open too", "FE", {}, ["opened"], "open"],
    ["errors can be ignored instead", "EEEE", { errorsAreFailures: false }, [], "ok"],
    ["an ignored error does not break a failure streak", "FEF", { errorsAreFailures: false }, ["opened"], "open"],
    ["openAfter 1 opens at once", "F", { openAfter: 1 }, ["opened"], "open"],
    ["openAfter 3 needs three", "FFPFF", { openAfter: 3 }, [], "failing"],
    ["openAfter 3 opens at the third", "FFF", { openAfter: 3 }, ["opened"], "open"],
    ["resolveAfter 3 needs three", "FFPP", { resolveAfter: 3 }, ["opened"], "resolving"],
    ["resolveAfter 3 resolves at the third", "FFPPP", { resolveAfter: 3 }, ["opened", "resolved"], "ok"],
  ])("%s (%s)", (_name, pattern, config, kinds, status) => {
    const result = play(checks(pattern), config);
    expect(result.kinds).toEqual(kinds);
    expect(result.state.status).toBe(status);
  });

  it("counts consecutive failures and successes", () => {
    const { state } = play(checks("PFFFP"));
    expect(state).toMatchObject({ consecutiveFailures: 0, consecutiveSuccesses: 1, status: "resolving" });
    expect(play(checks("PFFF")).state.consecutiveFailures).toBe(3);
  });

  it("carries the last failure's detail on the notification", () => {
    const { notifications } = play(checks("FF"));
    expect(notifications[0]).toMatchObject({ kind: "opened", detail: "check 1", at: T0 + 5 * MIN, flapping: false });
  });
});

describe("dedup keys", () => {
  it("name the alert, the transition and the incident number", () => {
    const events = [...checks("FFPP"), ...checks("FFPP", T0 + 3 * HOUR)];
    expect(play(events).notifications.map((n) => n.dedupKey)).toEqual([
      "orders-rows:opened:1",
      "orders-rows:resolved:1",
      "orders-rows:opened:2",
      "orders-rows:resolved:2",
    ]);
  });

  it("are the same after the state went through JSON (a restart) halfway", () => {
    const events = [...checks("FFPPF"), { type: "mute", at: T0 + HOUR, until: T0 + 2 * HOUR } as const,
      ...checks("FPFFPP", T0 + 3 * HOUR)];
    const straight = play(events);
    let state = initialAlertState("orders-rows");
    const keys: string[] = [];
    for (const event of events) {
      const revived = JSON.parse(JSON.stringify(state)) as AlertState;
      const next = nextAlertState(revived, event);
      keys.push(...next.notifications.map((n) => n.dedupKey));
      state = next.state;
    }
    expect(keys).toEqual(straight.notifications.map((n) => n.dedupKey));
    expect(state).toEqual(straight.state);
  });

  it("are repeated, not renewed, when the same event is replayed after a crash", () => {
    const { state } = play(checks("F"));
    const event: AlertEvent = { type: "check", at: T0 + 10 * MIN, outcome: "fail" };
    const first = nextAlertState(state, event);
    const replay = nextAlertState(state, event);
    expect(replay).toEqual(first);
    expect(first.notifications.map((n) => n.dedupKey)).toEqual(["orders-rows:opened:1"]);
  });

  it("never mutates the state it is given", () => {
    const frozen = Object.freeze(play(checks("FFP")).state);
    expect(() => nextAlertState(frozen, { type: "check", at: T0 + HOUR, outcome: "pass" })).not.toThrow();
    expect(() => nextAlertState(frozen, { type: "mute", at: T0 + HOUR, until: T0 + 2 * HOUR })).not.toThrow();
  });
});

describe("re-opening soon after a resolve", () => {
  it("notifies the re-open once, marked flapping", () => {
    const { notifications } = play([...checks("FFPP"), ...checks("FF", T0 + 30 * MIN)]);
    expect(notifications.map((n) => [n.kind, n.sequence, n.flapping])).toEqual([
      ["opened", 1, false],
      ["resolved", 1, false],
      ["opened", 2, true],
    ]);
  });

  it("resolves a flapping incident only after a calm flap window", () => {
    const flapping = play([...checks("FFPP"), ...checks("FF", T0 + 30 * MIN)]).state;
    const early = play(checks("PPPPPP", T0 + 45 * MIN), {}, flapping);
    expect(early.kinds).toEqual([]);
    expect(early.state.status).toBe("resolving");
    const later = play(checks("P", T0 + 35 * MIN + HOUR), {}, early.state);
    expect(later.kinds).toEqual(["resolved"]);
  });

  it("sends at most one opened/resolved pair per flap window however the check flaps", () => {
    const pattern = "FFPP".repeat(48); // 16 hours of 5-minute checks flapping every 20 minutes
    const { notifications } = play(checks(pattern));
    const opened = notifications.filter((n) => n.kind === "opened").length;
    expect(opened).toBeLessThanOrEqual(1 + 16);
    expect(opened).toBeGreaterThan(1); // still honest: a re-open is never silent
  });

  it("treats a re-open after the flap window as a normal incident", () => {
    const { notifications } = play([...checks("FFPP"), ...checks("FFPP", T0 + 2 * HOUR)]);
    expect(notifications.map((n) => n.flapping)).toEqual([false, false, false, false]);
  });
});

describe("acknowledge", () => {
  it("marks an open alert acknowledged without notifying", () => {
    const opened = play(checks("FF")).state;
    const acked = nextAlertState(opened, { type: "ack", at: T0 + HOUR, by: "ana" });
    expect(acked.notifications).toEqual([]);
    expect(acked.state).toMatchObject({ acknowledgedBy: "ana", acknowledgedAt: T0 + HOUR, status: "open" });
    expect(alertPhase(acked.state, T0 + HOUR)).toBe("acknowledged");
  });

  it("keeps the first acknowledgement of an incident: a second one rewrites neither who nor when", () => {
    const acked = nextAlertState(play(checks("FF")).state, { type: "ack", at: T0 + HOUR, by: "ana" }).state;
    const again = nextAlertState(acked, { type: "ack", at: T0 + 2 * HOUR, by: "key:ci" });
    expect(again.state).toMatchObject({ acknowledgedBy: "ana", acknowledgedAt: T0 + HOUR });
    expect(again.notifications).toEqual([]);
  });

  it("does nothing when nothing is open", () => {
    for (const pattern of ["", "F", "FFPP"]) {
      const before = play(checks(pattern)).state;
      expect(nextAlertState(before, { type: "ack", at: T0 + HOUR }).state).toEqual(before);
    }
  });

  it("still resolves, and the next incident starts unacknowledged", () => {
    const acked = play([...checks("FF"), { type: "ack", at: T0 + 11 * MIN }]).state;
    const resolved = play(checks("PP", T0 + 15 * MIN), {}, acked);
    expect(resolved.kinds).toEqual(["resolved"]);
    expect(resolved.state.acknowledgedAt).toBeNull();
    const reopened = play(checks("FF", T0 + 5 * HOUR), {}, resolved.state);
    expect(reopened.state.acknowledgedAt).toBeNull();
    expect(alertPhase(reopened.state, T0 + 6 * HOUR)).toBe("open");
  });
});

describe("mute", () => {
  const mute = (at: number, until: number): AlertEvent => ({ type: "mute", at, until, by: "ops" });
  const tick = (at: number): AlertEvent => ({ type: "tick", at });

  it.each<[string, AlertEvent[], string[]]>([
    ["an incident inside a mute is silent", [mute(T0 - MIN, T0 + HOUR), ...checks("FFF")], []],
    ["an incident that opened and resolved inside a mute stays silent",
      [mute(T0 - MIN, T0 + HOUR), ...checks("FFPP"), tick(T0 + 2 * HOUR)], []],
    ["an incident still open when the mute ends is notified then, once",
      [mute(T0 - MIN, T0 + HOUR), ...checks("FF"), tick(T0 + HOUR), tick(T0 + 2 * HOUR)], ["opened"]],
    ["any event after the end ends the mute, a check too",
      [mute(T0 - MIN, T0 + 20 * MIN), ...checks("FFFFFF")], ["opened"]],
    ["one notified before the mute is not notified again when it ends",
      [...checks("FF"), mute(T0 + 6 * MIN, T0 + HOUR), ...checks("FFF", T0 + 10 * MIN), tick(T0 + 2 * HOUR)], ["opened"]],
    ["one notified before and resolved during the mute is resolved when it ends",
      [...checks("FF"), mute(T0 + 6 * MIN, T0 + HOUR), ...checks("PP", T0 + 10 * MIN), tick(T0 + HOUR)], ["opened", "resolved"]],
    ["unmute reconciles at once",
      [mute(T0 - MIN, T0 + 5 * HOUR), ...checks("FF"), { type: "unmute", at: T0 + 20 * MIN }], ["opened"]],
    ["a mute that already ended is ignored", [mute(T0 - MIN, T0 - MIN), ...checks("FF")], ["opened"]],
  ])("%s", (_name, events, kinds) => {
    expect(play(events).kinds).toEqual(kinds);
  });

  it("tells about both incidents when one resolved and another opened during the mute", () => {
    const events = [...checks("FF"), mute(T0 + 6 * MIN, T0 + 5 * HOUR), ...checks("PP", T0 + 10 * MIN),
      ...checks("FF", T0 + 2 * HOUR), tick(T0 + 5 * HOUR)];
    const { notifications } = play(events);
    expect(notifications.map((n) => n.dedupKey)).toEqual([
      "orders-rows:opened:1",
      "orders-rows:resolved:1",
      "orders-rows:opened:2",
    ]);
    expect(notifications.slice(1).every((n) => n.at === T0 + 5 * HOUR)).toBe(true);
  });

  it("shows as muted until it ends", () => {
    const { state } = play([mute(T0, T0 + HOUR), ...checks("FF", T0 + MIN)]);
    expect(alertPhase(state, T0 + 30 * MIN)).toBe("muted");
    expect(alertPhase(state, T0 + HOUR)).toBe("open");
  });

  it("shows what it is once its incident is over, muted or not", () => {
    const { state } = play([mute(T0, T0 + HOUR), ...checks("FFPP", T0 + MIN)]);
    expect(state.mutedUntil).toBe(T0 + HOUR);
    expect(alertPhase(state, T0 + 30 * MIN)).toBe("ok");
  });
});

describe("manual resolve", () => {
  it("resolves an open alert once and says who did it", () => {
    const { notifications, state } = play([...checks("FFF"), { type: "resolve", at: T0 + HOUR, by: "ana" }]);
    expect(notifications.map((n) => [n.kind, n.resolvedBy])).toEqual([["opened", null], ["resolved", "ana"]]);
    expect(state).toMatchObject({ status: "ok", consecutiveFailures: 0, lastResolvedAt: T0 + HOUR });
  });

  it("opens a new incident if the check keeps failing", () => {
    const { notifications } = play([...checks("FF"), { type: "resolve", at: T0 + HOUR }, ...checks("FF", T0 + 3 * HOUR)]);
    expect(notifications.map((n) => n.dedupKey)).toEqual([
      "orders-rows:opened:1",
      "orders-rows:resolved:1",
      "orders-rows:opened:2",
    ]);
  });

  it("clears a failure streak that had not opened yet, silently", () => {
    const { kinds, state } = play([...checks("F"), { type: "resolve", at: T0 + MIN }, ...checks("F", T0 + 2 * MIN)]);
    expect(kinds).toEqual([]);
    expect(state.status).toBe("failing");
    expect(state.consecutiveFailures).toBe(1);
  });

  it("does nothing when all is well", () => {
    expect(play([{ type: "resolve", at: T0 }]).kinds).toEqual([]);
  });
});

describe("defaults", () => {
  it("open after 2, resolve after 2, flap window of an hour, errors count", () => {
    expect(ALERT_DEFAULTS).toEqual({ openAfter: 2, resolveAfter: 2, flapWindowMs: HOUR, errorsAreFailures: true });
  });

  it("start ok with nothing notified", () => {
    expect(initialAlertState("a")).toMatchObject({ alertId: "a", status: "ok", sequence: 0, notifiedOpen: null });
    expect(alertPhase(initialAlertState("a"), T0)).toBe("ok");
  });
});
