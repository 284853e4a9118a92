// Threat: SQLite's table-valued PRAGMAs (`SELECT * FROM pragma_database_list`) slipped past the
// PRAGMA allow-list and showed the server's absolute file paths. Both forms obey one allow-list.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";
import { sqliteTarget } from "../support/targets.js";

let h: Harness;
let token: string;
let id: number;

beforeAll(async () => {
  h = await createHarness();
  const user = await h.newUser();
  token = user.token;
  const target = await sqliteTarget(h.sqliteRoot);
  id = (await h.call("POST", "/databases/add_db_connection", { token, json: target.body })).body.db_connection.id;
});
afterAll(async () => h?.close());

const query = (sql: string) => h.call("POST", `/databases/${id}/query`, { token, json: { sql } });

describe("POST /databases/{id}/query on SQLite", () => {
  it.each([
    "SELECT * FROM pragma_database_list",
    "SELECT file FROM pragma_database_list()",
    "SELECT * FROM main.PRAGMA_DATABASE_LIST",
    "SELECT name FROM sqlite_master WHERE EXISTS (SELECT 1 FROM pragma_database_list)",
    "PRAGMA database_list",
  ])("refuses %s without revealing a path", async (sql) => {
    const res = await query(sql);
    expect(res.status, res.text).toBe(400);
    expect(res.body).toMatchObject({ code: "sql_refused", rule: "pragma_not_allowed" });
    expect(res.text).not.toContain(h.sqliteRoot);
  });

  it("still answers the allowed PRAGMAs in both forms", async () => {
    for (const sql of ["PRAGMA table_info(Track)", "SELECT name FROM pragma_table_info('Track')"]) {
      const res = await query(sql);
      expect(res.status, res.text).toBe(200);
      expect(res.body.data.rows.flat()).toContain("TrackId");
    }
  });
});
