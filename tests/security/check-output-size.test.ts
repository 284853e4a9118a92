// Threat: a check that prints what the database holds. A custom SQL check whose value is not a
// number printed the whole cell (up to QUERY_MAX_BYTES), and the message went to the run, the
// alert, every channel's notification, the webhook and the log: one 8 MB cell made 16 MB
// notifications, and a SQLite column name has no length limit at all (schema drift prints it).
// A printed cell is cut to 200 characters, a run's message to 2,000, its details to 8,000.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";
import { addConnection, addWebhook, monitorTable, pgMonitoredDb, sqliteMonitoredDb, type MonitoredDb } from "../support/monitoring.js";
import { uniqueName } from "../support/services.js";
import { LOCAL_RECEIVER_ENV, startWebhookReceiver, type WebhookReceiver } from "../support/webhook-receiver.js";

const HUGE = 1_000_000;

let h: Harness;
let hooks: WebhookReceiver;
const targets: MonitoredDb[] = [];
beforeAll(async () => {
  hooks = await startWebhookReceiver();
  h = await createHarness({ env: { ...LOCAL_RECEIVER_ENV } });
});
afterAll(async () => {
  await h?.close();
  await hooks?.close();
  for (const t of targets) await t.drop();
});

describe("what a check run keeps of the database's text", () => {
  it("cuts a huge cell in the run, its alert, the notification and the log", async () => {
    const target = await pgMonitoredDb();
    targets.push(target);
    await target.exec("CREATE TABLE kv (v text)");
    await target.exec("INSERT INTO kv VALUES ('1')");
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, target.body);
    const path = `/${uniqueName("hook")}`;
    await addWebhook(h, user.token, `${hooks.url}${path}`);
    const table = await monitorTable(h, user.token, {
      connection_id: connectionId,
      table: "kv",
      checks: [{ kind: "custom_sql", name: "value", sql: "SELECT v FROM kv", max: 10 }],
      alert: { open_after: 1 },
    });
    await target.exec(`UPDATE kv SET v = repeat('x', ${HUGE})`);
    const logsBefore = h.logs.length;

    const run = await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token });
    expect(run.status).toBe(200);
    const [outcome] = run.body.outcomes;
    expect(outcome).toMatchObject({ status: "error", message: expect.stringContaining("must be a number") });
    expect(outcome.message.length).toBeLessThan(400);
    expect(run.text.length).toBeLessThan(10_000);

    const alerts = await h.call("GET", "/api/alerts", { token: user.token });
    expect(alerts.body).toHaveLength(1);
    expect(alerts.text.length).toBeLessThan(10_000);
    await expect.poll(() => hooks.at(path).length).toBe(1);
    expect(JSON.stringify(hooks.at(path)[0]!.body).length).toBeLessThan(10_000);
    expect(h.logs.slice(logsBefore).join("").length).toBeLessThan(50_000);
  });

  it("cuts a schema drift's message and details when a column's name is huge (SQLite)", async () => {
    const target = await sqliteMonitoredDb(h.sqliteRoot);
    targets.push(target);
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, target.body);
    const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "events", checks: [{ kind: "schema_drift" }] });
    expect((await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token })).body.outcomes[0].status).toBe("pass");
    await target.exec(`ALTER TABLE events ADD COLUMN "${"c".repeat(HUGE)}" text`);

    const run = await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token });
    expect(run.status).toBe(200);
    expect(run.body.outcomes[0]).toMatchObject({ status: "fail", message: expect.stringMatching(/^schema drift: added c+… \(\d+ more characters\)$/) });
    const runs = await h.call("GET", `/api/tables/${table.id}/runs`, { token: user.token });
    expect(runs.text.length).toBeLessThan(20_000);
  });
});
