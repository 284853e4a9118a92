// Threat: comments as large as PostgreSQL allows (1 GB) on a database's tables and columns. A
// connection's introspected schema is kept in memory, per connection, and read by every
// session and agent: forty 1 MB comments cost 40 MB per saved connection to that database.
// Comments are cut to 1,000 characters in the introspection query itself.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { MAX_COMMENT_CHARS } from "../../src/connectors/drivers/postgres-introspect.js";
import { createHarness, type Harness } from "../support/harness.js";
import { addConnection, pgMonitoredDb, type MonitoredDb } from "../support/monitoring.js";

describe("comments on a PostgreSQL database's tables and columns", () => {
  let h: Harness;
  let target: MonitoredDb;
  beforeAll(async () => {
    h = await createHarness();
    target = await pgMonitoredDb();
    await target.exec(`COMMENT ON TABLE events IS '${"t".repeat(1_000_000)}'`);
    await target.exec(`COMMENT ON COLUMN events.note IS '${"c".repeat(1_000_000)}'`);
  });
  afterAll(async () => {
    await h?.close();
    await target?.drop();
  });

  it("keeps 1,000 characters of each", async () => {
    const user = await h.newUser();
    const id = await addConnection(h, user.token, target.body);
    const res = await h.call("GET", `/databases/${id}/schema`, { token: user.token });
    expect(res.status).toBe(200);
    expect(res.text.length).toBeLessThan(10_000);
    expect(res.text).toContain("t".repeat(MAX_COMMENT_CHARS));
    expect(res.text).toContain("c".repeat(MAX_COMMENT_CHARS));
  });
});
