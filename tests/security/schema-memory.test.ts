// Threat: one user's connections to large catalogs take the heap. Each connector keeps its
// database's introspected schema, a catalog is the database's to size (thousands of tables,
// 1,000-character comments), and a user may save the same large database many times: measured,
// twenty connections to a 162 MB catalog ended the process out of memory. One schema is kept up
// to SCHEMA_MAX_BYTES, past which it is refused naming the setting; all together up to
// SCHEMA_CACHE_MAX_BYTES, the least recently used forgotten (and read again when next used).
// A schema's JSON answer, once asked for, is kept with it and counted with it: written anew for
// each GET it cost 50 ms of the event loop for an 11 MB answer (bench/schema-get.ts), for
// anyone to repeat.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";
import { addConnection, pgMonitoredDb, type MonitoredDb } from "../support/monitoring.js";

/** A table of `columns` columns, each with a 1,000-character comment: about 1 kB a column. */
async function commentedTable(db: MonitoredDb, name: string, columns: number) {
  await db.exec(`CREATE TABLE ${name} (${Array.from({ length: columns }, (_, i) => `c${i} int`).join(", ")})`);
  for (let i = 0; i < columns; i++) await db.exec(`COMMENT ON COLUMN ${name}.c${i} IS '${String(i).padEnd(1000, "x")}'`);
}

describe("the schemas one process keeps", () => {
  let h: Harness;
  let large: MonitoredDb;
  let medium: MonitoredDb;
  beforeAll(async () => {
    // One schema up to 64 KiB; three of about 43 kB, each with its JSON answer of about as much,
    // fit together, a fourth does not.
    h = await createHarness({ env: { SCHEMA_MAX_BYTES: "65536", SCHEMA_CACHE_MAX_BYTES: "300000" } });
    [large, medium] = await Promise.all([pgMonitoredDb(), pgMonitoredDb()]);
    await Promise.all([commentedTable(large, "wide", 80), commentedTable(medium, "wide", 40)]);
  }, 60_000);
  afterAll(async () => {
    await h?.close();
    await Promise.all([large?.drop(), medium?.drop()]);
  });

  it("refuses a schema past SCHEMA_MAX_BYTES with 413, naming the setting, and keeps nothing of it", async () => {
    const user = await h.newUser();
    const id = await addConnection(h, user.token, large.body);
    for (const [method, path] of [
      ["GET", `/databases/${id}/schema`],
      ["POST", `/databases/connect_db/${id}`],
    ] as const) {
      const res = await h.call(method, path, { token: user.token });
      expect(res.status, res.text).toBe(413);
      expect(res.body).toMatchObject({ code: "result_too_large", detail: expect.stringMatching(/schema is about 0\.\d MiB \(2 tables, 83 columns\), more than the 0\.1 MiB .*SCHEMA_MAX_BYTES/) });
    }
    expect(h.deps.connectors.schemaBytes).toBe(0);
  });

  it("keeps the schemas of many connections within SCHEMA_CACHE_MAX_BYTES, reading a forgotten one again", async () => {
    const user = await h.newUser();
    const ids: number[] = [];
    for (let i = 0; i < 4; i++) ids.push(await addConnection(h, user.token, medium.body));
    const columnsOf = async (id: number) => {
      const res = await h.call("GET", `/databases/${id}/schema`, { token: user.token });
      expect(res.status, res.text).toBe(200);
      return res.body.tables.find((t: { name: string }) => t.name === "wide").columns.length;
    };
    for (const id of ids) {
      expect(await columnsOf(id)).toBe(40);
      // The schema and its JSON answer.
      expect(h.deps.connectors.schemaBytes).toBeGreaterThan(80_000);
      expect(h.deps.connectors.schemaBytes).toBeLessThanOrEqual(300_000);
    }
    // The first was forgotten for the fourth: read again, whole. The audit trail shows the
    // second catalog read; the fourth connection's, still kept, was read once.
    expect(await columnsOf(ids[0]!)).toBe(40);
    expect(await columnsOf(ids[3]!)).toBe(40);
    expect(h.deps.connectors.schemaBytes).toBeLessThanOrEqual(300_000);
    await h.deps.audit!.flush();
    const reads = async (id: number) =>
      (await h.call("GET", `/api/audit?connection_id=${id}&source=introspection`, { token: user.token })).body.records.length;
    expect(await reads(ids[0]!)).toBe(2);
    expect(await reads(ids[3]!)).toBe(1);
  });

  it("answers the same JSON while the schema stands, and the new schema's, never the kept one, once refreshed", async () => {
    const user = await h.newUser();
    const id = await addConnection(h, user.token, medium.body);
    const tablesIn = (body: { tables: { name: string }[] }) => body.tables.map((t) => t.name);
    const names = async () => tablesIn((await h.call("GET", `/databases/${id}/schema`, { token: user.token })).body);
    const first = await h.call("GET", `/databases/${id}/schema`, { token: user.token });
    expect(first.headers.get("content-type")).toMatch(/^application\/json/);
    expect(first.body).toMatchObject({ dialect: "postgresql", tables: expect.arrayContaining([expect.objectContaining({ name: "wide" })]) });
    const again = await h.call("GET", `/databases/${id}/schema`, { token: user.token });
    expect(again.text).toBe(first.text);

    await medium.exec("CREATE TABLE added_later (id int)");
    try {
      // Cached until refreshed, as before: then the new schema, and its JSON, not the kept one.
      expect(await names()).not.toContain("added_later");
      const refreshed = await h.call("POST", `/databases/${id}/schema/refresh`, { token: user.token });
      expect(tablesIn(refreshed.body)).toContain("added_later");
      expect(await names()).toContain("added_later");
    } finally {
      await medium.exec("DROP TABLE added_later");
    }
  });
});
