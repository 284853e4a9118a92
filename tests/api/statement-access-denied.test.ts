// A statement the database refuses with "access denied" is a failed statement, not a database
// that could not be reached. MariaDB answers 1045 (the error of a login refused at connect) to a
// read of a view whose DEFINER was dropped: read as a connection that could not be made, it
// counted towards CONNECTION_TESTS_PER_MINUTE and, past it, locked the whole saved connection
// out, and it made a monitoring run report every other check of the table as unreachable.

import { afterAll, beforeAll, expect, it } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";
import { monitorTable } from "../support/monitoring.js";
import { mariaAdmin, uniqueName } from "../support/services.js";
import { mariaTarget, type TargetDb } from "../support/targets.js";

let h: Harness;
let target: TargetDb;
const gone = uniqueName("pulse_gone").slice(0, 60);

beforeAll(async () => {
  h = await createHarness({ env: { CONNECTION_TESTS_PER_MINUTE: "2" } });
  target = await mariaTarget();
  const db = target.body.database_name as string;
  await mariaAdmin(`CREATE USER '${gone}'@'localhost'`);
  await mariaAdmin(`GRANT SELECT ON \`${db}\`.* TO '${gone}'@'localhost'`);
  await mariaAdmin(`CREATE DEFINER = '${gone}'@'localhost' SQL SECURITY DEFINER VIEW \`${db}\`.orphaned AS SELECT id, name FROM \`${db}\`.items`);
  await mariaAdmin(`DROP USER '${gone}'@'localhost'`);
});
afterAll(async () => {
  await target?.drop();
  await mariaAdmin(`DROP USER IF EXISTS '${gone}'@'localhost'`);
  await h?.close();
});

it("answers a view whose definer was dropped as sql_failed, and does not count it as a connection that could not be made", async () => {
  const user = await h.newUser();
  const added = await h.call("POST", "/databases/add_db_connection", { token: user.token, json: target.body });
  expect(added.status, added.text).toBe(201);
  const id = added.body.db_connection.id as number;
  const query = (sql: string) => h.call("POST", `/databases/${id}/query`, { token: user.token, json: { sql } });

  // More than CONNECTION_TESTS_PER_MINUTE of them.
  for (let i = 0; i < 4; i++) {
    const res = await query("SELECT * FROM orphaned");
    expect(res.status, res.text).toBe(400);
    expect(res.body.code).toBe("sql_failed");
    expect(res.body.detail).toMatch(/Access denied/);
  }
  expect((await query("SELECT count(*) AS n FROM items")).status).toBe(200);

  const table = await monitorTable(h, user.token, { connection_id: id, table: "orphaned", checks: [{ kind: "volume" }, { kind: "schema_drift" }] });
  const run = await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token });
  expect(run.status, run.text).toBe(200);
  expect(run.body.outcomes.map((o: any) => [o.check, o.status])).toEqual([
    ["volume", "error"],
    ["schema_drift", "pass"],
  ]);
  expect(run.body.outcomes[0].message).toMatch(/Access denied/);
}, 60_000);
