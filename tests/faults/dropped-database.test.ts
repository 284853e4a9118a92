// A customer database dropped while Pulse holds connections to it, then restored: Pulse says it
// is gone (not "connected, 0 tables", which MariaDB's pooled connections, left with no database
// selected, used to read it as), and works again once it is back, without a restart.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";
import { mariaAdmin, pgAdmin } from "../support/services.js";
import { addConnection, mariaMonitoredDb, pgMonitoredDb, type MonitoredDb } from "../support/monitoring.js";

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(async () => {
  await h?.close();
});

describe.each([
  ["PostgreSQL", pgMonitoredDb, (name: string) => pgAdmin(`DROP DATABASE "${name}" WITH (FORCE)`), (name: string) => pgAdmin(`CREATE DATABASE "${name}"`)],
  ["MariaDB", mariaMonitoredDb, (name: string) => mariaAdmin(`DROP DATABASE \`${name}\``), (name: string) => mariaAdmin(`CREATE DATABASE \`${name}\``)],
] as const)("a %s database dropped under Pulse", (_name, makeDb, dropDatabase, createDatabase) => {
  let db: MonitoredDb;
  beforeAll(async () => {
    db = await makeDb();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it("is reported gone, not empty, and works again once restored", async () => {
    const user = await h.newUser();
    const id = await addConnection(h, user.token, db.body);
    const connect = () => h.call("POST", `/databases/connect_db/${id}`, { token: user.token });
    const query = () => h.call("POST", `/databases/${id}/query`, { token: user.token, json: { sql: "SELECT count(*) AS n FROM events" } });
    expect((await connect()).body.tables).toBe(1);
    expect((await query()).status).toBe(200);

    const name = String(db.body.database_name);
    await dropDatabase(name);
    const gone = await connect();
    expect(gone.status, gone.text).toBe(400);
    expect(gone.body).toMatchObject({ code: "connection_failed", detail: expect.stringContaining(name) });
    const refused = await query();
    expect(refused.status, refused.text).toBeGreaterThanOrEqual(400);
    expect(refused.status).toBeLessThan(500);

    await createDatabase(name);
    await db.exec("CREATE TABLE events (id int primary key)");
    await db.exec("INSERT INTO events VALUES (1), (2)");
    const back = await connect();
    expect(back.status, back.text).toBe(200);
    expect(back.body.tables).toBe(1);
    const counted = await query();
    expect(counted.status, counted.text).toBe(200);
    expect(counted.body.data.rows).toEqual([[2]]);
  });
});
