// Alerts end to end, driven by scheduler ticks on a clock moved by hand, with a local webhook
// receiver: stop inserting and the freshness alert opens within one interval of its threshold;
// delete half the rows and volume fails; add and drop a column and schema drift fails then
// recovers; resuming resolves with exactly one recovery notice.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";
import { addConnection, addWebhook, monitorTable, monitoredDb, testClock, type Dialect, type MonitoredDb } from "../support/monitoring.js";
import { LOCAL_RECEIVER_ENV, startWebhookReceiver, type WebhookReceiver } from "../support/webhook-receiver.js";

const MINUTE = 60_000;
let hooks: WebhookReceiver;
beforeAll(async () => {
  hooks = await startWebhookReceiver();
});
afterAll(async () => hooks?.close());

describe.each<Dialect>(["postgresql", "mysql", "sqlite"])("alerts on %s", (dialect) => {
  let h: Harness;
  let db: MonitoredDb;
  const clock = testClock();

  beforeAll(async () => {
    // No jitter: each run is due exactly one interval after the previous one.
    h = await createHarness({ now: clock.now, random: () => 0, env: LOCAL_RECEIVER_ENV });
    db = await monitoredDb(dialect, h);
  });
  afterAll(async () => {
    await h?.close();
    await db?.drop();
  });

  /** One interval passes and the scheduler ticks; returns the ids of the tables it ran. */
  async function nextMinute(): Promise<number[]> {
    clock.advance(MINUTE);
    return (await h.scheduler.tick()).claimed;
  }

  async function setup(body: Record<string, unknown>) {
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, db.body);
    const path = `/${dialect}-${user.id}`;
    await addWebhook(h, user.token, `${hooks.url}${path}`);
    const table = await monitorTable(h, user.token, { connection_id: connectionId, interval_seconds: 60, ...body });
    const events = () => hooks.at(path).map((r) => r.body.event as string);
    const alerts = async (status?: string) => (await h.call("GET", `/api/alerts${status ? `?status=${status}` : ""}`, { token: user.token })).body as any[];
    return { user, table, events, alerts, path };
  }

  it("opens the freshness alert within one interval of the threshold, then resolves once with one recovery notice", async () => {
    const { table, events, alerts, path } = await setup({
      table: "events",
      checks: [{ kind: "freshness", column: "ts", max_lag_seconds: 300 }],
      alert: { open_after: 1 },
    });
    await db.insertEvents(1, clock.now());
    expect(await h.scheduler.tick().then((r) => r.claimed)).toContain(table.id);
    for (let i = 0; i < 3; i++) {
      await db.insertEvents(1, clock.now() + MINUTE);
      expect(await nextMinute()).toContain(table.id);
    }
    const stoppedAt = clock.now(); // the newest row's time: inserting stops here
    const threshold = stoppedAt + 300_000;
    let opened: any;
    for (let i = 0; i < 10 && !opened; i++) {
      await nextMinute();
      [opened] = await alerts("open");
    }
    expect(opened).toMatchObject({ check: "freshness:ts", status: "open", sequence: 1 });
    const openedAt = Date.parse(opened.opened_at);
    expect(openedAt).toBeGreaterThan(threshold);
    expect(openedAt - threshold).toBeLessThanOrEqual(MINUTE);
    expect(opened.last_detail).toMatch(/^data lag \d+ min is over the limit of 5 min$/);

    // Still stale for a while: no second notice.
    for (let i = 0; i < 3; i++) await nextMinute();
    expect(events()).toEqual(["alert.opened"]);
    expect(hooks.at(path)[0]!.body).toMatchObject({ table: { id: table.id, name: "events" }, check: "freshness:ts", sequence: 1 });

    // Inserts resume: two passing runs resolve it, with one recovery notice however long it stays fine.
    for (let i = 0; i < 6; i++) {
      await db.insertEvents(1, clock.now() + MINUTE);
      await nextMinute();
    }
    expect(events()).toEqual(["alert.opened", "alert.resolved"]);
    // The recovery says what the check says now; the failure it recovered from goes along.
    const recovery = hooks.at(path)[1]!.body;
    expect(recovery.detail).toMatch(/^data lag \d+ (s|min) is within the limit of 5 min$/);
    expect(recovery.last_failure).toMatch(/^data lag \d+ min is over the limit of 5 min$/);
    expect(recovery.text).toContain(recovery.detail);
    expect(await alerts("open")).toEqual([]);
    expect(await alerts("resolved")).toMatchObject([{ id: opened.id, status: "resolved", sequence: 1 }]);
    const runs = (await h.call("GET", `/api/tables/${table.id}/runs?limit=1000`, { token: (await h.newUser()).token })).status;
    expect(runs).toBe(404); // history is the owner's only
  });

  it("detects schema drift when a column is added, and recovers when it is dropped again", async () => {
    await db.exec("CREATE TABLE drifting (id int, name varchar(20))");
    const { table, events, alerts } = await setup({ table: "drifting", checks: [{ kind: "schema_drift" }] });
    expect((await h.scheduler.tick()).claimed).toContain(table.id); // first run: the snapshot
    expect(await nextMinute()).toContain(table.id);
    await db.exec("ALTER TABLE drifting ADD COLUMN extra int");
    await nextMinute();
    await nextMinute();
    const [open] = await alerts("open");
    expect(open).toMatchObject({ check: "schema_drift", status: "open" });
    expect(open.last_detail).toMatch(/^schema drift: added extra \((int|integer|int\(11\))\)$/);
    await db.exec("ALTER TABLE drifting DROP COLUMN extra");
    await nextMinute();
    await nextMinute();
    await nextMinute();
    expect(events()).toEqual(["alert.opened", "alert.resolved"]);
  });
});

describe("volume and drift details on PostgreSQL", () => {
  let h: Harness;
  let db: MonitoredDb;
  const clock = testClock();
  beforeAll(async () => {
    h = await createHarness({ now: clock.now, random: () => 0, env: LOCAL_RECEIVER_ENV });
    db = await monitoredDb("postgresql", h);
  });
  afterAll(async () => {
    await h?.close();
    await db?.drop();
  });

  it("flags a volume anomaly when half the rows are deleted, after learning the usual growth", async () => {
    await db.exec("CREATE TABLE orders (id serial primary key, total numeric)");
    await db.exec("INSERT INTO orders (total) SELECT g FROM generate_series(1, 1000) g");
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, db.body);
    const table = await monitorTable(h, user.token, {
      connection_id: connectionId,
      table: "orders",
      interval_seconds: 60,
      checks: [{ kind: "volume", baseline: { seasonality: "none" } }],
    });
    // Sixteen minutes of normal life: five orders a minute.
    for (let i = 0; i < 16; i++) {
      await db.exec("INSERT INTO orders (total) SELECT g FROM generate_series(1, 5) g");
      clock.advance(MINUTE);
      await h.scheduler.tick();
    }
    const history = (await h.call("GET", `/api/tables/${table.id}/runs?limit=100`, { token: user.token })).body;
    expect(history.every((r: any) => r.status === "pass")).toBe(true);
    expect(history[0]).toMatchObject({ value: 1080, details: { verdict: "ok", method: "exact" } });

    await db.exec("DELETE FROM orders WHERE id % 2 = 0");
    clock.advance(MINUTE);
    await h.scheduler.tick();
    const [drop] = (await h.call("GET", `/api/tables/${table.id}/runs?limit=1`, { token: user.token })).body;
    expect(drop).toMatchObject({ status: "fail", value: 540, details: { verdict: "anomaly" } });
    expect(drop.lower).toBeGreaterThan(1000);
    expect(drop.message).toMatch(/^row count 540 is below the expected range/);
    clock.advance(MINUTE);
    await h.scheduler.tick();
    const [alert] = (await h.call("GET", "/api/alerts?status=open", { token: user.token })).body;
    expect(alert).toMatchObject({ table_id: table.id, check: "volume", status: "open" });
  });

  it("reports a retyped column, and a resolve by hand accepts the new shape", async () => {
    await db.exec("CREATE TABLE shapes (id int, note text)");
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, db.body);
    const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "shapes", interval_seconds: 60, checks: [{ kind: "schema_drift" }] });
    await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token });
    await db.exec("ALTER TABLE shapes ALTER COLUMN note TYPE varchar(20), ALTER COLUMN id SET NOT NULL, DROP COLUMN IF EXISTS nothing");
    clock.advance(MINUTE);
    const [drift] = (await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token })).body.outcomes;
    expect(drift).toMatchObject({ status: "fail", value: 2, details: { retyped: [{ name: "note", from: "text", to: "character varying(20)" }], nullability: [{ name: "id", from: true, to: false }] } });
    clock.advance(MINUTE);
    await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token });
    const [alert] = (await h.call("GET", "/api/alerts?status=open", { token: user.token })).body;
    expect((await h.call("POST", `/api/alerts/${alert.id}/resolve`, { token: user.token })).body.status).toBe("resolved");
    clock.advance(MINUTE);
    const [after] = (await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token })).body.outcomes;
    expect(after).toMatchObject({ status: "pass", message: "snapshot of 2 columns taken" });
    clock.advance(MINUTE);
    const [again] = (await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token })).body.outcomes;
    expect(again).toMatchObject({ status: "pass", message: "2 columns, as accepted" });
    expect((await h.call("GET", "/api/alerts?status=open", { token: user.token })).body).toEqual([]);
  });

  it("with the default of two failures, opens within two intervals of the threshold", async () => {
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, db.body);
    const table = await monitorTable(h, user.token, {
      connection_id: connectionId,
      table: "events",
      interval_seconds: 60,
      checks: [{ kind: "freshness", column: "ts", max_lag_seconds: 120 }],
    });
    await db.insertEvents(1, clock.now());
    const threshold = clock.now() + 120_000;
    let alert: any;
    for (let i = 0; i < 10 && !alert; i++) {
      await h.scheduler.tick();
      [alert] = (await h.call("GET", "/api/alerts?status=open", { token: user.token })).body;
      if (!alert) clock.advance(MINUTE);
    }
    expect(alert.table_id).toBe(table.id);
    const late = Date.parse(alert.opened_at) - threshold;
    expect(late).toBeGreaterThan(0);
    expect(late).toBeLessThanOrEqual(2 * MINUTE);
  });
});
