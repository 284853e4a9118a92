// A connection's schema is kept per instance once read, and read again once it is older than
// SCHEMA_MAX_AGE_SECONDS: without that, a table the customer added was never seen by GET
// /databases/{id}/schema, /ask or MCP on a connection in steady use, until someone refreshed by
// hand.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";
import { createPgDatabase, PG } from "../support/services.js";

const MAX_AGE_SECONDS = 2;

describe("a kept schema older than SCHEMA_MAX_AGE_SECONDS", () => {
  let h: Harness;
  let db: Awaited<ReturnType<typeof createPgDatabase>>;
  beforeAll(async () => {
    h = await createHarness({ env: { SCHEMA_MAX_AGE_SECONDS: String(MAX_AGE_SECONDS) } });
    db = await createPgDatabase("pulse_schema_age");
    await db.query("CREATE TABLE before_t (id int PRIMARY KEY)");
  });
  afterAll(async () => {
    await h?.close();
    await db?.drop();
  });

  it("is kept within the age, and read again on its next use past it", async () => {
    const user = await h.newUser();
    const added = await h.call("POST", "/databases/add_db_connection", {
      token: user.token,
      json: { db_type: "postgresql", host: PG.host, port: PG.port, database_name: db.name, username: PG.user, db_password: "unused" },
    });
    expect(added.status, added.text).toBe(201);
    const id = added.body.db_connection.id as number;
    const tables = async () => {
      const res = await h.call("GET", `/databases/${id}/schema`, { token: user.token });
      expect(res.status, res.text).toBe(200);
      return (res.body.tables as { name: string }[]).map((t) => t.name).sort();
    };

    expect(await tables()).toEqual(["before_t"]);
    const read = performance.now();
    await db.query("CREATE TABLE after_t (id int PRIMARY KEY)");
    // Kept: the catalog is not read on every use.
    expect(await tables()).toEqual(["before_t"]);
    expect(performance.now() - read).toBeLessThan(MAX_AGE_SECONDS * 1000);

    await new Promise((resolve) => setTimeout(resolve, MAX_AGE_SECONDS * 1000 + 100));
    expect(await tables()).toEqual(["after_t", "before_t"]);
  }, 30_000);
});
