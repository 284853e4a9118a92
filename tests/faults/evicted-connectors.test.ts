// A connector the cache lets go of while requests hold it: another session of the user
// disconnecting, the connection updated or deleted, an idle sweep, room for others. A statement
// under way (in the guard, waiting for a slot, at the database) finishes on it; one asked of it
// later, by an agent or a check run that holds it between statements, runs on the connection's
// connector now. Neither fails on a pool closed under it.

import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { connectorFor } from "../../src/connectors/saved-connection.js";
import { createHarness, type Harness } from "../support/harness.js";
import { PG } from "../support/services.js";
import { mariaTarget, postgresTarget, sqliteTarget, type TargetDb } from "../support/targets.js";

let h: Harness;
const targets: TargetDb[] = [];
beforeAll(async () => {
  h = await createHarness({ env: { USER_MAX_CONCURRENCY: "1" } });
});
afterAll(async () => {
  await h?.close();
  for (const t of targets) await t.drop();
});

async function connectionTo(token: string, dialect: TargetDb["dialect"]) {
  const target = dialect === "postgresql" ? await postgresTarget() : dialect === "mysql" ? await mariaTarget() : await sqliteTarget(h.sqliteRoot);
  targets.push(target);
  const added = await h.call("POST", "/databases/add_db_connection", { token, json: target.body });
  expect(added.status).toBe(201);
  return { id: added.body.db_connection.id as number, target };
}

describe.each(["postgresql", "mysql", "sqlite"] as const)("a connector held across its eviction (%s)", (dialect) => {
  it("runs the next statement asked of it on the connection's connector now, and answers 404 once the connection is deleted", async () => {
    const user = await h.newUser();
    const { id } = await connectionTo(user.token, dialect);
    const held = await connectorFor(h.deps, user.id, id);
    expect((await held.query("SELECT 1 AS one")).rows).toEqual([[1]]);

    await h.deps.connectors.evict(id);
    expect((await held.query("SELECT 2 AS two")).rows).toEqual([[2]]);
    expect(h.deps.connectors.has(id)).toBe(true);

    expect((await h.call("DELETE", `/databases/${id}`, { token: user.token })).status).toBe(204);
    await expect(held.query("SELECT 3 AS three")).rejects.toMatchObject({ code: "not_found" });
  });
});

describe("a connection updated while a connector of it is held", () => {
  it("runs the held connector's next statement on the new target", async () => {
    const user = await h.newUser();
    const { id } = await connectionTo(user.token, "postgresql");
    const held = await connectorFor(h.deps, user.id, id);
    const other = await postgresTarget();
    targets.push(other);
    const put = await h.call("PUT", `/databases/${id}`, { token: user.token, json: { database_name: other.body.database_name } });
    expect(put.status).toBe(200);
    expect((await held.query("SELECT current_database() AS db")).rows).toEqual([[other.body.database_name]]);
  });
});

describe("a statement waiting for its user's slot while another session disconnects", () => {
  it("runs once the slot frees, on PostgreSQL, rather than failing on a closed pool", async () => {
    const user = await h.newUser();
    const { id, target } = await connectionTo(user.token, "postgresql");
    const login = async () => (await h.call("POST", "/login", { form: { username: user.email, password: user.password } })).body.access_token as string;
    const [first, second, third] = [user.token, await login(), await login()];
    for (const token of [first, second, third]) expect((await h.call("POST", `/databases/connect_db/${id}`, { token })).status).toBe(200);

    // The first session's statement (or the catalog read before it) waits on a lock the test
    // holds, so holds the user's one slot.
    const locker = new pg.Client({ ...PG, database: target.body.database_name as string });
    await locker.connect();
    try {
      await locker.query("BEGIN");
      await locker.query("LOCK TABLE items IN ACCESS EXCLUSIVE MODE");
      const running = h.call("POST", "/query", { token: first, json: { sql: "SELECT count(*) AS n FROM items" } });
      for (const deadline = Date.now() + 10_000; ; await new Promise((r) => setTimeout(r, 20))) {
        const waiting = await locker.query("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'");
        if (waiting.rowCount) break;
        if (Date.now() > deadline) throw new Error("the first statement never waited on the lock");
      }
      const queued = h.call("POST", "/query", { token: second, json: { sql: "SELECT 1 AS one" } });
      await new Promise((r) => setTimeout(r, 300));
      expect((await h.call("POST", "/databases/disconnect-session", { token: third })).status).toBe(200);
      await locker.query("COMMIT");
      const [ran, waited] = await Promise.all([running, queued]);
      expect(ran.status).toBe(200);
      expect(waited.status).toBe(200);
      expect(waited.body.rows ?? waited.body.data).toBeDefined();
    } finally {
      await locker.end();
    }
  });
});
