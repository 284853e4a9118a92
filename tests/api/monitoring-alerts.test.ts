// /api/alerts over HTTP: alerts open from failing checks, then are listed by status and table,
// acknowledged, muted until a time, resolved by hand; other users' alerts are 404. A run that
// races the deletion of its table or of a channel.

import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { deliverDueNotifications, deliveriesSettled } from "../../src/monitoring/notifiers.js";
import { createHarness, type Harness } from "../support/harness.js";
import { addClosedAlerts, addConnection, addWebhook, monitorTable, pgMonitoredDb, type MonitoredDb } from "../support/monitoring.js";
import { PG, pgAdmin } from "../support/services.js";
import { LOCAL_RECEIVER_ENV, startWebhookReceiver, type WebhookReceiver } from "../support/webhook-receiver.js";

let h: Harness;
let target: MonitoredDb;
let hooks: WebhookReceiver;

beforeAll(async () => {
  // Every test's runs and dry runs share the one target database: its monitoring budget is
  // not what these tests are about.
  h = await createHarness({ env: { ...LOCAL_RECEIVER_ENV, MONITOR_QUERIES_PER_MINUTE: "100000" } });
  target = await pgMonitoredDb();
  await target.insertEvents(3, Date.now());
  hooks = await startWebhookReceiver();
});
afterAll(async () => {
  await h?.close();
  await target?.drop();
  await hooks?.close();
});

/** A table of `user`'s whose custom check fails (3 rows, at most 0) and opens on its first failure. */
async function addFailingTable(user: { token: string }) {
  const connectionId = await addConnection(h, user.token, target.body);
  return monitorTable(h, user.token, {
    connection_id: connectionId,
    table: "events",
    checks: [{ kind: "custom_sql", name: "rows", sql: "SELECT count(*) FROM events", max: 0 }],
    alert: { open_after: 1 },
  });
}

/** A user with a failing table, notified by webhook, run once: its alert is open. */
async function failingTable() {
  const user = await h.newUser();
  const table = await addFailingTable(user);
  const path = `/hook-${user.id}`;
  await addWebhook(h, user.token, `${hooks.url}${path}`);
  const run = await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token });
  expect(run.body.outcomes[0]).toMatchObject({ status: "fail", value: 3, upper: 0 });
  const [alert] = (await h.call("GET", "/api/alerts", { token: user.token })).body;
  return { user, table, alert, path };
}

describe("GET /api/alerts", () => {
  it("lists an alert once its check failed often enough, and notifies once", async () => {
    const { user, table, alert, path } = await failingTable();
    expect(alert).toMatchObject({
      id: expect.any(Number),
      table_id: table.id,
      check: "custom_sql:rows",
      check_kind: "custom_sql",
      status: "open",
      sequence: 1,
      consecutive_failures: 1,
      opened_at: expect.any(String),
      acknowledged_at: null,
      muted_until: null,
      last_detail: expect.stringContaining("rows 3 is outside the limit"),
    });
    await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token });
    expect(hooks.at(path).map((r) => r.body.event)).toEqual(["alert.opened"]);
    expect(hooks.at(path)[0]!.body).toMatchObject({ alert_id: alert.id, check: "custom_sql:rows", table: { id: table.id, name: "events" } });
  });

  it("escapes what the database says in a Slack message, so a row cannot mention @channel or post a link", async () => {
    const user = await h.newUser();
    const table = `slack_${user.id}`;
    const hostile = "<!channel> session expired: <https://evil.example/login|log in again> & more";
    await target.exec(`CREATE TABLE ${table} (id int, note text)`);
    await target.exec(`INSERT INTO ${table} VALUES (1, '0')`);
    const connectionId = await addConnection(h, user.token, target.body);
    const monitored = await monitorTable(h, user.token, {
      connection_id: connectionId,
      table,
      checks: [{ kind: "custom_sql", name: "notes", sql: `SELECT CAST(max(note) AS int) FROM ${table}`, max: 0 }],
      alert: { open_after: 1 },
    });
    const path = `/slack-${user.id}`;
    await addWebhook(h, user.token, `${hooks.url}${path}`, "slack");
    // Written by anyone who can write a row, once the check was accepted.
    await target.exec(`UPDATE ${table} SET note = '${hostile}'`);
    await h.call("POST", `/api/tables/${monitored.id}/run`, { token: user.token });
    const [message] = hooks.at(path).map((r) => r.body as { text: string });
    expect(message!.text).toContain("&lt;!channel&gt; session expired: &lt;https://evil.example/login|log in again&gt; &amp; more");
    expect(message!.text).not.toMatch(/[<>]/);
  });

  it("filters by status and by table", async () => {
    const { user, table, alert } = await failingTable();
    const get = (query: string) => h.call("GET", `/api/alerts${query}`, { token: user.token });
    expect((await get("?status=open")).body.map((a: any) => a.id)).toEqual([alert.id]);
    expect((await get("?status=resolved")).body).toEqual([]);
    expect((await get(`?table_id=${table.id}`)).body.map((a: any) => a.id)).toEqual([alert.id]);
    expect((await get(`?table_id=${table.id + 100000}`)).body).toEqual([]);
    expect((await get("?status=sleeping")).status).toBe(422);
    expect((await get("?table_id=x")).status).toBe(422);
  });

  it("lists every alert still open with status=active: acknowledged and muted ones too, not resolved ones", async () => {
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, target.body);
    const ids: number[] = [];
    for (const name of ["plain", "acked", "muted", "fixed", "fixed_in_mute"]) {
      const table = await monitorTable(h, user.token, {
        connection_id: connectionId,
        table: "events",
        checks: [{ kind: "custom_sql", name, sql: "SELECT count(*) FROM events", max: 0 }],
        alert: { open_after: 1 },
      });
      await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token });
      ids.push((await h.call("GET", `/api/alerts?table_id=${table.id}`, { token: user.token })).body[0].id);
    }
    const [plain, acked, muted, fixed, fixedInMute] = ids as [number, number, number, number, number];
    const until = new Date(Date.now() + 3_600_000).toISOString();
    await h.call("POST", `/api/alerts/${acked}/ack`, { token: user.token });
    await h.call("POST", `/api/alerts/${muted}/mute`, { token: user.token, json: { until } });
    await h.call("POST", `/api/alerts/${fixed}/resolve`, { token: user.token });
    await h.call("POST", `/api/alerts/${fixedInMute}/mute`, { token: user.token, json: { until } });
    await h.call("POST", `/api/alerts/${fixedInMute}/resolve`, { token: user.token });
    const listed = async (status: string) => (await h.call("GET", `/api/alerts?status=${status}`, { token: user.token })).body.map((a: any) => a.id).sort((a: number, b: number) => a - b);
    expect(await listed("open")).toEqual([plain]);
    expect(await listed("acknowledged")).toEqual([acked]);
    expect(await listed("active")).toEqual([plain, acked, muted]);
    // A mute silences an incident; one resolved within it shows as resolved.
    expect(await listed("muted")).toEqual([muted]);
    expect(await listed("resolved")).toEqual([fixed, fixedInMute]);
  });

  it("finds an open alert by status behind thousands of newer resolved ones", async () => {
    const { user, table, alert } = await failingTable();
    const store = h.pgDatabase!.name;
    await pgAdmin("UPDATE alerts SET opened_at = now() - interval '1 day' WHERE id = $1", store, [alert.id]);
    await addClosedAlerts(h, alert.id, 5001);
    for (const query of ["?status=active", "?status=open", `?status=open&table_id=${table.id}`]) {
      const res = await h.call("GET", `/api/alerts${query}`, { token: user.token });
      expect(res.body.map((a: any) => a.id), query).toEqual([alert.id]);
    }
    expect((await h.call("GET", "/api/alerts?status=resolved&limit=10", { token: user.token })).body).toHaveLength(10);
  });

  it("answers as many alerts without `limit` as the document says it does, newest first", async () => {
    const { user, alert } = await failingTable();
    const doc = (await h.call("GET", "/openapi.json")).body;
    const limit = doc.paths["/api/alerts"].get.parameters.find((p: { name: string }) => p.name === "limit");
    expect(limit.schema.default).toEqual(expect.any(Number));
    await addClosedAlerts(h, alert.id, limit.schema.default);
    const res = await h.call("GET", "/api/alerts", { token: user.token });
    expect(res.body).toHaveLength(limit.schema.default);
    expect(res.body[0].id).toBe(alert.id);
  });

  it("pages through every alert newest first with before and before_id, alerts opened in one millisecond included", async () => {
    const { user, alert } = await failingTable();
    // 1,200 more than one page of the most a page may hold (1,000), in groups of 30 opened in
    // the same millisecond.
    await addClosedAlerts(h, alert.id, 1200, "date_trunc('milliseconds', now()) - (1 + g / 30) * interval '1 minute'");
    const seen: { id: number; opened_at: string }[] = [];
    for (let page = 0; page < 200; page++) {
      const last = seen.at(-1);
      const cursor = last ? `&before=${encodeURIComponent(last.opened_at)}&before_id=${last.id}` : "";
      const res = await h.call("GET", `/api/alerts?limit=7${cursor}`, { token: user.token });
      expect(res.status, res.text).toBe(200);
      seen.push(...res.body);
      if (res.body.length < 7) break;
    }
    expect(seen).toHaveLength(1201);
    expect(new Set(seen.map((a) => a.id)).size).toBe(1201);
    expect(seen[0]!.id).toBe(alert.id);
    const order = seen.map((a) => [Date.parse(a.opened_at), a.id] as const);
    expect(order.every(([at, id], i) => i === 0 || at < order[i - 1]![0] || (at === order[i - 1]![0] && id < order[i - 1]![1]))).toBe(true);
    // `before` alone: the alerts opened earlier than that time.
    const before = await h.call("GET", `/api/alerts?limit=1000&before=${encodeURIComponent(seen[1]!.opened_at)}`, { token: user.token });
    expect(before.body.every((a: { opened_at: string }) => Date.parse(a.opened_at) < Date.parse(seen[1]!.opened_at))).toBe(true);
    const noTime = await h.call("GET", "/api/alerts?before_id=5", { token: user.token });
    expect(noTime.status).toBe(422);
    expect(noTime.body.errors).toEqual([{ path: "query.before_id", message: "needs before (the same alert's opened_at)" }]);
  });

  it("does not list an alert whose check never failed enough to open", async () => {
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, target.body);
    const table = await monitorTable(h, user.token, {
      connection_id: connectionId,
      table: "events",
      checks: [{ kind: "custom_sql", name: "rows", sql: "SELECT count(*) FROM events", max: 0 }],
    });
    await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token });
    expect((await h.call("GET", "/api/alerts", { token: user.token })).body).toEqual([]);
  });
});

describe("notification delivery", () => {
  it("names each notification in X-Pulse-Notification, and a delivery the store fails to record is not counted as failed", async () => {
    const store = h.pgDatabase!.name;
    const trigger = `refuse_sent_${Date.now()}`;
    // The store fails exactly when a delivery is recorded: a hiccup right after the POST.
    await pgAdmin(
      `CREATE FUNCTION ${trigger}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.status = 'sent' THEN RAISE EXCEPTION 'store hiccup'; END IF; RETURN NEW; END $$;
       CREATE TRIGGER ${trigger} BEFORE UPDATE ON sent_notifications FOR EACH ROW EXECUTE FUNCTION ${trigger}();`,
      store,
    );
    const logFrom = h.logs.length;
    try {
      const { path } = await failingTable();
      const [sent] = hooks.at(path);
      const [row] = await pgAdmin<{ dedup_key: string; status: string; last_error: string | null; attempts: number }>(
        "SELECT dedup_key, status, last_error, attempts FROM sent_notifications WHERE dedup_key = $1",
        store,
        [sent!.headers["x-pulse-notification"]],
      );
      // Left as claimed: not marked failed (which sent it again at its next retry), not sent again now.
      expect(row).toMatchObject({ status: "pending", last_error: null, attempts: 1 });
      await deliverDueNotifications(h.deps);
      expect(hooks.at(path)).toHaveLength(1);
      const said = h.logs.slice(logFrom).join("");
      expect(said).toContain("recording a sent notification failed");
      expect(said).not.toContain("monitoring notification not delivered");
    } finally {
      await pgAdmin(`DROP TRIGGER ${trigger} ON sent_notifications; DROP FUNCTION ${trigger}();`, store);
    }
  });
});

describe("notifications and disabled channels", () => {
  it("sends nothing to a disabled channel: neither new notifications nor ones queued before it was disabled", async () => {
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, target.body);
    const [on, off, later] = [`/on-${user.id}`, `/off-${user.id}`, `/later-${user.id}`];
    await addWebhook(h, user.token, `${hooks.url}${on}`);
    const offId = await addWebhook(h, user.token, `${hooks.url}${off}`);
    const laterId = await addWebhook(h, user.token, `${hooks.url}${later}`);
    expect((await h.call("PATCH", `/api/channels/${offId}`, { token: user.token, json: { enabled: false } })).status).toBe(200);
    const table = await monitorTable(h, user.token, {
      connection_id: connectionId,
      table: "events",
      checks: [{ kind: "custom_sql", name: "rows", sql: "SELECT count(*) FROM events", max: 0 }],
      alert: { open_after: 1 },
    });
    hooks.failNext(2, 503); // the first sends (to /on and /later) fail: both stay queued for a retry
    await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token });
    await h.call("PATCH", `/api/channels/${laterId}`, { token: user.token, json: { enabled: false } });
    await pgAdmin("UPDATE sent_notifications SET next_attempt_at = now() WHERE status = 'pending' AND channel_id IN ($1, $2)", h.pgDatabase!.name, [laterId, offId]);
    const [onId] = (await h.call("GET", "/api/channels", { token: user.token })).body.map((c: any) => c.id);
    await pgAdmin("UPDATE sent_notifications SET next_attempt_at = now() WHERE status = 'pending' AND channel_id = $1", h.pgDatabase!.name, [onId]);
    await deliverDueNotifications(h.deps);
    expect(hooks.at(on).map((r) => r.body.event)).toEqual(["alert.opened"]);
    expect(hooks.at(off)).toEqual([]);
    expect(hooks.at(later)).toEqual([]);
    const rows = await pgAdmin<{ channel_id: number; status: string; last_error: string }>(
      "SELECT channel_id, status, last_error FROM sent_notifications WHERE channel_id = ANY($1::int[])",
      h.pgDatabase!.name,
      [[offId, laterId]],
    );
    expect(rows).toEqual([{ channel_id: laterId, status: "failed", last_error: "channel disabled" }]);
  });
});

describe("a run that races a deletion", () => {
  /** A session of its own on `database`, for holding locks. */
  async function sessionOn(database: string) {
    const client = new pg.Client({ host: PG.host, port: PG.port, user: PG.user, database });
    await client.connect();
    return client;
  }
  /** Runs the table's checks now, and does `meanwhile` while its count(*) waits on a lock of
   * the events table; answers the run. */
  async function runWhile(user: { token: string }, table: { id: number }, meanwhile: () => Promise<void>) {
    const monitored = target.body.database_name as string;
    const locker = await sessionOn(monitored);
    try {
      await locker.query("BEGIN");
      await locker.query("LOCK TABLE events IN ACCESS EXCLUSIVE MODE");
      const running = h.call("POST", `/api/tables/${table.id}/run`, { token: user.token });
      await untilWaiting(monitored, "%count(*)%");
      await meanwhile();
      await locker.query("ROLLBACK");
      return await running;
    } finally {
      await locker.end();
    }
  }
  /** Waits until a session of `database` waits on a lock with a statement matching `like`. */
  async function untilWaiting(database: string, like: string) {
    for (let i = 0; i < 200; i++) {
      const rows = await pgAdmin("SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock' AND query ILIKE $2", PG.database, [database, like]);
      if (rows.length > 0) return;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    throw new Error(`nothing waited on ${like} in ${database}`);
  }

  it("notifies the channels left when one is deleted between the read of the channels and the notification's insert", async () => {
    const user = await h.newUser();
    const table = await addFailingTable(user);
    const gone = await addWebhook(h, user.token, `${hooks.url}/gone-${user.id}`);
    const kept = await addWebhook(h, user.token, `${hooks.url}/kept-${user.id}`);
    const store = h.pgDatabase!.name;
    const deleter = await sessionOn(store);
    try {
      // Deleted, not yet committed: the run reads the channel, and its insert waits on the row.
      await deleter.query("BEGIN");
      await deleter.query("DELETE FROM notification_channels WHERE id = $1", [gone]);
      const running = h.call("POST", `/api/tables/${table.id}/run`, { token: user.token });
      await untilWaiting(store, "%sent_notifications%");
      await deleter.query("COMMIT");
      const run = await running;
      expect(run.status).toBe(200);
      expect(run.body.outcomes[0]).toMatchObject({ status: "fail", run_id: expect.any(Number) });
      expect(run.body.notifications_queued).toBe(1);
    } finally {
      await deleter.end();
    }
    expect((await h.call("GET", "/api/alerts", { token: user.token })).body).toEqual([expect.objectContaining({ table_id: table.id, status: "open" })]);
    const queued = await pgAdmin<{ channel_id: number }>("SELECT channel_id FROM sent_notifications WHERE channel_id = ANY($1)", store, [[gone, kept]]);
    expect(queued).toEqual([{ channel_id: kept }]);
  });

  it("resolves a schema drift alert while its table is deleted without a deadlock: both lock the table before the alert", async () => {
    const user = await h.newUser();
    const name = `drift_${user.id}`;
    await target.exec(`CREATE TABLE ${name} (id int)`);
    const connectionId = await addConnection(h, user.token, target.body);
    const table = await monitorTable(h, user.token, { connection_id: connectionId, table: name, checks: [{ kind: "schema_drift" }], alert: { open_after: 1 } });
    const channel = await addWebhook(h, user.token, `${hooks.url}/drift-${user.id}`);
    await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token });
    await target.exec(`ALTER TABLE ${name} ADD COLUMN added int`);
    await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token });
    const [alert] = (await h.call("GET", "/api/alerts", { token: user.token })).body;
    expect(alert).toMatchObject({ check: "schema_drift", status: "open" });
    const store = h.pgDatabase!.name;
    const blocker = await sessionOn(store);
    try {
      // The resolve's notification waits on the channel's row, its locks held; the delete comes then.
      await blocker.query("BEGIN");
      await blocker.query("SELECT 1 FROM notification_channels WHERE id = $1 FOR UPDATE", [channel]);
      const resolving = h.call("POST", `/api/alerts/${alert.id}/resolve`, { token: user.token });
      await untilWaiting(store, "%sent_notifications%");
      const deleting = h.call("DELETE", `/api/tables/${table.id}`, { token: user.token });
      await new Promise((r) => setTimeout(r, 300));
      await blocker.query("COMMIT");
      expect((await resolving).status).toBe(200);
      expect((await deleting).status).toBe(204);
    } finally {
      await blocker.end();
    }
  });

  it("drops the outcomes of a table deleted while its checks ran, and answers with them unsaved", async () => {
    const user = await h.newUser();
    const table = await addFailingTable(user);
    const run = await runWhile(user, table, async () => {
      expect((await h.call("DELETE", `/api/tables/${table.id}`, { token: user.token })).status).toBe(204);
    });
    expect(run.status).toBe(200);
    expect(run.body.outcomes).toEqual([expect.objectContaining({ status: "fail", run_id: null })]);
    expect((await h.call("GET", "/api/alerts", { token: user.token })).body).toEqual([]);
    expect(h.logs.join("")).toContain("monitored table (or its owner) deleted during its run");
  });

  it("deletes the alerts of checks taken off the table, also when the change comes while they run", async () => {
    const user = await h.newUser();
    const table = await addFailingTable(user);
    const alertsNow = async () => (await h.call("GET", "/api/alerts", { token: user.token })).body as { check: string }[];
    const setChecks = (checks: unknown[]) => h.call("PATCH", `/api/tables/${table.id}`, { token: user.token, json: { checks } });
    await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token });
    expect(await alertsNow()).toHaveLength(1);

    // Renamed: the old name's alert goes at once.
    expect((await setChecks([{ kind: "custom_sql", name: "rows_again", sql: "SELECT count(*) FROM events", max: 0 }])).status).toBe(200);
    expect(await alertsNow()).toEqual([]);

    // Taken off while a run of it waits on the table: its outcome opens no alert again.
    const run = await runWhile(user, table, async () => {
      // (Schema drift needs no trial run, which would wait for the run's share of the budget.)
      expect((await setChecks([{ kind: "schema_drift" }])).status).toBe(200);
    });
    expect(run.body.outcomes).toEqual([expect.objectContaining({ status: "fail" })]);
    expect(await alertsNow()).toEqual([]);
  });
});

describe("alerts deleted with their check, table or connection", () => {
  const events = (path: string) => hooks.at(path).map((r) => [r.body.event, r.body.resolved_by]);

  it.each([
    ["its table is deleted", "its table being deleted", (user: { token: string }, table: { id: number; connection_id: number }) => h.call("DELETE", `/api/tables/${table.id}`, { token: user.token })],
    ["its check is taken off", "its check being removed", (user: { token: string }, table: { id: number }) => h.call("PATCH", `/api/tables/${table.id}`, { token: user.token, json: { checks: [{ kind: "schema_drift" }] } })],
    ["its connection is deleted", "its connection being deleted", (user: { token: string }, table: { connection_id: number }) => h.call("DELETE", `/databases/${table.connection_id}`, { token: user.token })],
  ] as const)("tells the channels an open incident is over when %s, rather than leave it open for good", async (_what, by, remove) => {
    const { user, table, path } = await failingTable();
    expect(events(path)).toEqual([["alert.opened", null]]);
    const res = await remove(user, table);
    expect(res.status, res.text).toBeLessThan(300);
    expect(events(path)).toEqual([
      ["alert.opened", null],
      ["alert.resolved", by],
    ]);
    expect(hooks.at(path)[1]!.body).toMatchObject({ table: { id: table.id }, check: "custom_sql:rows" });
    expect((await h.call("GET", "/api/alerts", { token: user.token })).body).toEqual([]);
  });

  it("tells the channels an incident they were told of is over, even under a mute", async () => {
    const { user, table, alert, path } = await failingTable();
    const until = new Date(Date.now() + 3_600_000).toISOString();
    expect((await h.call("POST", `/api/alerts/${alert.id}/mute`, { token: user.token, json: { until } })).status).toBe(200);
    expect((await h.call("DELETE", `/api/tables/${table.id}`, { token: user.token })).status).toBe(204);
    expect(events(path)).toEqual([
      ["alert.opened", null],
      ["alert.resolved", "its table being deleted"],
    ]);
  });

  it("tells nothing of an alert that was not open", async () => {
    const user = await h.newUser();
    const table = await addFailingTable(user);
    const path = `/quiet-${user.id}`;
    await addWebhook(h, user.token, `${hooks.url}${path}`);
    expect((await h.call("DELETE", `/api/tables/${table.id}`, { token: user.token })).status).toBe(204);
    expect(hooks.at(path)).toEqual([]);
  });
});

describe("POST /api/alerts/{id}/ack, /mute, /resolve", () => {
  it("takes at most MONITOR_ALERT_ACTIONS_PER_MINUTE resolves and unmutes a minute from a user (429 with Retry-After past it), never refusing an acknowledgement or a mute", async () => {
    const { user, alert } = await failingTable();
    const limit = h.config.monitor.alertActionsPerMinute;
    const until = new Date(Date.now() + 3_600_000).toISOString();
    const act = (action: string) => h.call("POST", `/api/alerts/${alert.id}/${action}`, { token: user.token, json: action === "mute" ? { until } : undefined });
    for (let i = 0; i < limit; i++) {
      for (const action of ["mute", "unmute"]) {
        const res = await act(action);
        expect(res.status, `${action} ${i + 1}: ${res.text}`).toBe(200);
      }
    }
    const refused = await act("resolve");
    expect(refused.status).toBe(429);
    expect(refused.body.detail).toMatch(/MONITOR_ALERT_ACTIONS_PER_MINUTE/);
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
    expect((await act("unmute")).status).toBe(429);
    // What quiets an outage is never refused.
    expect((await act("ack")).status).toBe(200);
    expect((await act("mute")).status).toBe(200);
    // Another user's actions are theirs to count.
    const other = await failingTable();
    expect((await h.call("POST", `/api/alerts/${other.alert.id}/resolve`, { token: other.user.token })).status).toBe(200);
  });

  it("answers a run and an alert action without waiting for a webhook that hangs", async () => {
    const user = await h.newUser();
    const table = await addFailingTable(user);
    await addWebhook(h, user.token, `${hooks.url}/hanging-${user.id}`);
    const post = (path: string) => h.app.request(path, { method: "POST", headers: { authorization: `Bearer ${user.token}` } });
    /** Whether the notification the answer queued is still being sent once the answer is in. */
    const answeredWhileSending = async (res: Response) => {
      expect(res.status).toBe(200);
      let settled = false;
      void deliveriesSettled(h.deps).then(() => (settled = true));
      await new Promise((resolve) => setImmediate(resolve));
      const sending = !settled;
      await deliveriesSettled(h.deps);
      return sending;
    };
    hooks.hangNext(1);
    expect(await answeredWhileSending(await post(`/api/tables/${table.id}/run`))).toBe(true);
    const [alert] = (await h.call("GET", "/api/alerts", { token: user.token })).body;
    hooks.hangNext(1);
    expect(await answeredWhileSending(await post(`/api/alerts/${alert.id}/resolve`))).toBe(true);
  });

  it("acknowledges, mutes until a time, and resolves with one recovery notice", async () => {
    const { user, alert, path } = await failingTable();
    const ack = await h.call("POST", `/api/alerts/${alert.id}/ack`, { token: user.token });
    expect(ack.status).toBe(200);
    expect(ack.body).toMatchObject({ status: "acknowledged", acknowledged_at: expect.any(String), acknowledged_by: `user:${user.id}` });

    const until = new Date(Date.now() + 3_600_000).toISOString();
    const mute = await h.call("POST", `/api/alerts/${alert.id}/mute`, { token: user.token, json: { until } });
    expect(mute.status).toBe(200);
    expect(mute.body).toMatchObject({ status: "muted", muted_until: until });
    expect((await h.call("GET", "/api/alerts?status=muted", { token: user.token })).body.map((a: any) => a.id)).toEqual([alert.id]);

    const resolved = await h.call("POST", `/api/alerts/${alert.id}/resolve`, { token: user.token });
    expect(resolved.status).toBe(200);
    // Resolved during the mute: the recovery is not sent now, and the mute holds on (for a
    // new incident before it ends), but the alert shows what it is: resolved.
    expect(resolved.body).toMatchObject({ status: "resolved", resolved_at: expect.any(String), muted_until: until });
    expect(hooks.at(path).map((r) => r.body.event)).toEqual(["alert.opened"]);
    const conflict = await h.call("POST", `/api/alerts/${alert.id}/resolve`, { token: user.token });
    expect(conflict.status).toBe(409);
    expect(conflict.body.detail).toBe("This alert is not open (it is resolved)");
  });

  it("ends a mute by hand: the alert shows open again, and an incident that opened under the mute is notified then, once", async () => {
    const { user, table, alert, path } = await failingTable();
    const until = new Date(Date.now() + 3_600_000).toISOString();
    await h.call("POST", `/api/alerts/${alert.id}/resolve`, { token: user.token });
    // Muted by mistake for an hour; the check fails again meanwhile (a new incident, silenced).
    await h.call("POST", `/api/alerts/${alert.id}/mute`, { token: user.token, json: { until } });
    await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token });
    await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token });
    expect((await h.call("GET", `/api/alerts/${alert.id}`, { token: user.token })).body).toMatchObject({ status: "muted", sequence: 2 });
    expect(hooks.at(path).map((r) => r.body.event)).toEqual(["alert.opened", "alert.resolved"]);

    const unmuted = await h.call("POST", `/api/alerts/${alert.id}/unmute`, { token: user.token });
    expect(unmuted.status).toBe(200);
    expect(unmuted.body).toMatchObject({ status: "open", sequence: 2, muted_until: null });
    await expect.poll(() => hooks.at(path).map((r) => r.body.event)).toEqual(["alert.opened", "alert.resolved", "alert.opened"]);
    // Again: nothing more to tell.
    expect((await h.call("POST", `/api/alerts/${alert.id}/unmute`, { token: user.token })).body).toMatchObject({ status: "open", muted_until: null });
    expect(hooks.at(path)).toHaveLength(3);
    const stranger = await h.newUser();
    expect((await h.call("POST", `/api/alerts/${alert.id}/unmute`, { token: stranger.token })).status).toBe(404);
  });

  it("sends the recovery when resolved by hand outside a mute", async () => {
    const { user, alert, path } = await failingTable();
    const resolved = await h.call("POST", `/api/alerts/${alert.id}/resolve`, { token: user.token });
    expect(resolved.body).toMatchObject({ status: "resolved", resolved_at: expect.any(String) });
    expect(hooks.at(path).map((r) => [r.body.event, r.body.resolved_by])).toEqual([
      ["alert.opened", null],
      ["alert.resolved", `user:${user.id}`],
    ]);
    // The failure stays in the opened notice and goes along as last_failure; the detail is now.
    expect(hooks.at(path)[1]!.body).toMatchObject({ detail: `resolved by user:${user.id}`, last_failure: expect.stringContaining("rows 3 is outside the limit") });
  });

  it("shows no resolved_at once the alert opens again", async () => {
    const { user, table, alert } = await failingTable();
    await h.call("POST", `/api/alerts/${alert.id}/resolve`, { token: user.token });
    await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token });
    const [reopened] = (await h.call("GET", "/api/alerts", { token: user.token })).body;
    expect(reopened).toMatchObject({ id: alert.id, status: "open", sequence: 2, resolved_at: null });
  });

  it("answers 409 to ack or resolve an alert that is not open", async () => {
    const { user, alert } = await failingTable();
    await h.call("POST", `/api/alerts/${alert.id}/resolve`, { token: user.token });
    for (const action of ["ack", "resolve"]) {
      const res = await h.call("POST", `/api/alerts/${alert.id}/${action}`, { token: user.token });
      expect(res.status).toBe(409);
      expect(res.body).toMatchObject({ code: "conflict", detail: expect.stringContaining("not open") });
    }
  });

  it.each([
    [{}, "body.until"],
    [{ until: "tomorrow" }, "body.until"],
    [{ until: "2001-01-01T00:00:00Z" }, "body.until"],
  ])("answers 422 to a mute with %j", async (json, path) => {
    const { user, alert } = await failingTable();
    const res = await h.call("POST", `/api/alerts/${alert.id}/mute`, { token: user.token, json });
    expect(res.status).toBe(422);
    expect(res.body.errors.map((e: { path: string }) => e.path)).toContain(path);
  });

  it("answers 404 to every verb on another user's alert, and changes nothing", async () => {
    const { user, alert } = await failingTable();
    const intruder = await h.newUser();
    for (const [method, path, json] of [
      ["GET", `/api/alerts/${alert.id}`],
      ["POST", `/api/alerts/${alert.id}/ack`],
      ["POST", `/api/alerts/${alert.id}/mute`, { until: new Date(Date.now() + 60_000).toISOString() }],
      ["POST", `/api/alerts/${alert.id}/resolve`],
    ] as const) {
      const res = await h.call(method, path, { token: intruder.token, json });
      expect(res.status, `${method} ${path}`).toBe(404);
    }
    expect((await h.call("GET", "/api/alerts", { token: intruder.token })).body).toEqual([]);
    expect((await h.call("GET", `/api/alerts/${alert.id}`, { token: user.token })).body).toMatchObject({ status: "open", acknowledged_at: null, muted_until: null });
  });

  it("answers 401 without a token", async () => {
    expect((await h.call("GET", "/api/alerts")).status).toBe(401);
    expect((await h.call("POST", "/api/alerts/1/ack")).status).toBe(401);
  });
});
