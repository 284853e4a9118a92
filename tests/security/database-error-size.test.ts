// Threat: a database's error message is as long as the statement makes it (PostgreSQL's
// `repeat('x', 3000000)::int` answers 3 MB; SQLite names a missing table in full), and it goes
// on to the response, the log, every check run, alert and notification. A few failing checks
// run on demand could fill the metadata store. Pulse keeps 2,000 characters of it.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { driverMessage, MAX_DRIVER_MESSAGE_CHARS } from "../../src/connectors/drivers/driver-message.js";
import { createHarness, type Harness } from "../support/harness.js";
import { addConnection, monitorTable, pgMonitoredDb, sqliteMonitoredDb, type MonitoredDb } from "../support/monitoring.js";

/** The cut, its mark ("… (N more characters)"), and no more. */
const CUT = MAX_DRIVER_MESSAGE_CHARS + 40;

let h: Harness;
let pg: MonitoredDb;
let sqlite: MonitoredDb;

beforeAll(async () => {
  h = await createHarness();
  pg = await pgMonitoredDb();
  sqlite = await sqliteMonitoredDb(h.sqliteRoot);
  await pg.exec("CREATE TABLE flag (on_ boolean)");
});
afterAll(async () => {
  await h?.close();
  await pg?.drop();
  await sqlite?.drop();
});

describe("a database's error message", () => {
  it("is never cut between the halves of an emoji (the store refuses JSON holding half of one)", () => {
    const message = `${"x".repeat(MAX_DRIVER_MESSAGE_CHARS - 1)}😀 and more`;
    const cut = driverMessage(message);
    expect(cut.startsWith(`${"x".repeat(MAX_DRIVER_MESSAGE_CHARS - 1)}…`)).toBe(true);
    // No lone half: JSON.stringify writes one as \udXXX, which PostgreSQL's jsonb refuses.
    expect(JSON.stringify(cut)).not.toMatch(/\\ud[89ab]/i);
  });

  it("is cut on POST /query (PostgreSQL), saying how much was left out", async () => {
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, pg.body);
    const res = await h.call("POST", "/query", { token: user.token, json: { connection_id: connectionId, sql: "SELECT repeat('x', 3000000)::int" } });
    expect(res.status).toBe(400);
    expect(res.body.code).toBe("sql_failed");
    expect(res.body.detail).toMatch(/^invalid input syntax for type integer: "xxx/);
    expect(res.body.detail).toMatch(/… \(\d+ more characters\)$/);
    expect(res.body.detail.length).toBeLessThan(CUT);
    // Seed 000's envelope says it twice (detail and error).
    expect(res.text.length).toBeLessThan(3 * CUT);
  });

  it("is cut on POST /query (SQLite)", async () => {
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, sqlite.body);
    const res = await h.call("POST", "/query", { token: user.token, json: { connection_id: connectionId, sql: `SELECT * FROM "${"t".repeat(50_000)}"` } });
    expect(res.status).toBe(400);
    expect(res.body.detail).toMatch(/^no such table: ttt/);
    expect(res.body.detail.length).toBeLessThan(CUT);
  });

  it("is cut in a check's run and its history when a custom SQL check fails later", async () => {
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, pg.body);
    // Passes the dry run while the flag table is empty; fails with a 3 MB message after (the
    // subquery keeps PostgreSQL from folding the failing branch at plan time).
    const check = { kind: "custom_sql", name: "huge", sql: "SELECT CASE WHEN (SELECT count(*) FROM flag) = 0 THEN 0 ELSE (repeat('x', 3000000) || (SELECT count(*) FROM flag))::int END", max: 0 };
    const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "events", checks: [check] });
    await pg.exec("INSERT INTO flag VALUES (true)");
    const run = await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token });
    expect(run.status).toBe(200);
    const [outcome] = run.body.outcomes;
    expect(outcome).toMatchObject({ check: "custom_sql:huge", status: "error" });
    expect(outcome.message.length).toBeLessThan(CUT);
    const history = await h.call("GET", `/api/tables/${table.id}/runs`, { token: user.token });
    expect(history.text.length).toBeLessThan(4 * CUT);
  });
});
