// What monitoring tells the logs: each run, failing check, alert opening or resolving, and
// notification sent or not leaves one structured line with the ids an operator filters on.

import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";
import { addConnection, addWebhook, monitorTable, monitoredDb, testClock, type MonitoredDb } from "../support/monitoring.js";
import { LOCAL_RECEIVER_ENV, startWebhookReceiver, type WebhookReceiver } from "../support/webhook-receiver.js";

const MINUTE = 60_000;
const LEVEL = { debug: 20, info: 30, warn: 40 } as const;

let h: Harness;
let db: MonitoredDb;
let hooks: WebhookReceiver;
const clock = testClock();

beforeAll(async () => {
  hooks = await startWebhookReceiver();
  h = await createHarness({ now: clock.now, random: () => 0, env: LOCAL_RECEIVER_ENV });
  db = await monitoredDb("sqlite", h);
});
afterAll(async () => {
  await h?.close();
  await db?.drop();
  await hooks?.close();
});

type Line = Record<string, any> & { level: number; msg: string };

/** Runs `step` and returns the lines it logged with message `msg` about one test's table or
 * channel (other tests' tables run on the same ticks). */
async function linesOf(step: () => Promise<unknown>, ours: { tableId: number; channelId: number }): Promise<(msg: string) => Line[]> {
  const from = h.logs.length;
  await step();
  const lines = h.logs.slice(from).flatMap((chunk) => chunk.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Line));
  return (msg) => lines.filter((l) => l.msg === msg && (l.table_id === ours.tableId || l.channel_id === ours.channelId));
}

/** A table whose one check fails once it holds more than `max` events, alerting at the first failure. */
async function watched(max: number, webhookPath: string) {
  const user = await h.newUser();
  const connectionId = await addConnection(h, user.token, db.body);
  const channelId = await addWebhook(h, user.token, `${hooks.url}${webhookPath}`);
  const table = await monitorTable(h, user.token, {
    connection_id: connectionId,
    table: "events",
    interval_seconds: 60,
    checks: [{ kind: "custom_sql", name: "few", sql: "SELECT count(*) FROM events", max }],
    alert: { open_after: 1, resolve_after: 1 },
  });
  const tick = () => {
    clock.advance(MINUTE);
    return h.scheduler.tick();
  };
  const ours = { tableId: table.id as number, channelId };
  return { user, connectionId, channelId, table, logged: (step: () => Promise<unknown>) => linesOf(step, ours), tick };
}

describe("monitoring logs", () => {
  it("logs a passing run at debug, then a failing check, the run, the alert opening and its notification, then the resolution", async () => {
    await db.exec("DELETE FROM events");
    const { connectionId, channelId, table, tick, logged } = await watched(3, "/logs-cycle");
    const ids = { table_id: table.id, connection_id: connectionId };

    const passing = await logged(tick);
    expect(passing("monitoring run finished")).toEqual([
      expect.objectContaining({ level: LEVEL.debug, ...ids, trigger: "schedule", checks: 1, statuses: { pass: 1 }, duration_ms: expect.any(Number) }),
    ]);
    expect(passing("monitoring check failing")).toEqual([]);

    await db.insertEvents(5, clock.now());
    const failing = await logged(tick);
    expect(failing("monitoring check failing")).toEqual([
      expect.objectContaining({ level: LEVEL.warn, ...ids, check_key: "custom_sql:few", status: "fail", value: 5 }),
    ]);
    expect(failing("monitoring run finished")).toEqual([expect.objectContaining({ level: LEVEL.info, ...ids, statuses: { fail: 1 } })]);
    const [opened] = failing("monitoring alert opened");
    expect(failing("monitoring alert opened")).toHaveLength(1);
    expect(opened).toMatchObject({ level: LEVEL.warn, ...ids, check_key: "custom_sql:few", alert_id: expect.any(Number), sequence: 1 });
    expect(failing("monitoring notification sent")).toEqual([
      expect.objectContaining({ level: LEVEL.info, channel_id: channelId, alert_id: opened!.alert_id, event: "alert.opened", duration_ms: expect.any(Number) }),
    ]);

    const stillFailing = await logged(tick);
    expect(stillFailing("monitoring alert opened")).toEqual([]);
    expect(stillFailing("monitoring check failing")).toHaveLength(1);

    await db.exec("DELETE FROM events");
    const recovered = await logged(tick);
    expect(recovered("monitoring alert resolved")).toEqual([
      expect.objectContaining({ level: LEVEL.info, ...ids, alert_id: opened!.alert_id, check_key: "custom_sql:few", resolved_by: "check" }),
    ]);
    expect(recovered("monitoring notification sent")).toEqual([expect.objectContaining({ channel_id: channelId, event: "alert.resolved" })]);
    expect(recovered("monitoring run finished")).toEqual([expect.objectContaining({ level: LEVEL.debug, statuses: { pass: 1 } })]);
  });

  it("names a failing check by its key, status and code, never by its message, which may quote the monitored data", async () => {
    await db.exec("DELETE FROM events");
    const { user, table, tick, logged } = await watched(3, "/logs-private");
    await h.deps.store.db.execute(sql`UPDATE monitored_tables SET checks = ${JSON.stringify([{ kind: "custom_sql", name: "noted", sql: "SELECT note FROM events" }])}::jsonb WHERE id = ${table.id}`);
    await db.insertEvents(1, clock.now(), "private note of alice@example.com");
    const lines = await logged(tick);
    expect(lines("monitoring check failing")).toEqual([expect.objectContaining({ level: LEVEL.warn, check_key: "custom_sql:noted", status: "error" })]);
    expect(lines("monitoring alert opened")).toHaveLength(1);
    expect(h.logs.join("")).not.toContain("alice@example.com");
    // Its user reads it where it was kept.
    const runs = await h.call("GET", `/api/tables/${table.id}/runs`, { token: user.token });
    expect(JSON.stringify(runs.body)).toContain("alice@example.com");
  });

  it("logs no alert opening that a failed transaction undid, and logs it once it holds", async () => {
    await db.exec("DELETE FROM events");
    const { tick, logged } = await watched(0, "/logs-rollback");
    await db.insertEvents(1, clock.now());
    // The outbox refuses the alert's notification: the transaction that opened it rolls back.
    await h.deps.store.db.execute(sql.raw("CREATE FUNCTION pulse_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'outbox refused'; END $$"));
    await h.deps.store.db.execute(sql.raw("CREATE TRIGGER pulse_test_refuse BEFORE INSERT ON sent_notifications FOR EACH ROW EXECUTE FUNCTION pulse_test_refuse()"));
    try {
      const undone = await logged(tick);
      expect(undone("monitoring alert opened")).toEqual([]);
    } finally {
      await h.deps.store.db.execute(sql.raw("DROP TRIGGER pulse_test_refuse ON sent_notifications"));
      await h.deps.store.db.execute(sql.raw("DROP FUNCTION pulse_test_refuse()"));
    }
    const held = await logged(tick);
    expect(held("monitoring alert opened")).toHaveLength(1);
  });

  it("warns of a notification not delivered, naming channel, alert and reason but never the URL", async () => {
    await db.exec("DELETE FROM events");
    const { channelId, tick, logged } = await watched(0, "/logs-refused?token=secret-in-url");
    await db.insertEvents(1, clock.now());
    hooks.failNext(1, 503);
    const lines = await logged(tick);
    const [line] = lines("monitoring notification not delivered");
    expect(line).toMatchObject({ level: LEVEL.warn, channel_id: channelId, alert_id: expect.any(Number), event: "alert.opened", final: false });
    expect(line!.reason).toContain("HTTP 503");
    expect(JSON.stringify(line)).not.toContain("secret-in-url");
    expect(lines("monitoring notification sent")).toEqual([]);
  });
});
