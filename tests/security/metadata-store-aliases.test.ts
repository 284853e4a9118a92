// Security: no connection reaches Pulse's own metadata database or Redis, whatever it is called.
// The metadata database holds every user's password hash; here it is a PostgreSQL database in
// the same cluster as the customer databases, which must keep working. The network policy
// allows every address in this suite, so only the identity checks stand in the way.
import { hostname } from "node:os";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";
import { pgAdmin, PG, REDIS_URL, uniqueName } from "../support/services.js";
import { postgresTarget, type TargetDb } from "../support/targets.js";
import { startTcpRelay, type TcpRelay } from "../support/tcp-relay.js";

let h: Harness;
let customer: TargetDb;
let relay: TcpRelay;

beforeAll(async () => {
  h = await createHarness({ store: "postgresql", sessions: "redis", env: { TARGET_ALLOW_NETWORKS: "0.0.0.0/0,::/0" } });
  customer = await postgresTarget();
  relay = await startTcpRelay({ host: PG.host, port: PG.port }); // a port-forward to the cluster
});
afterAll(async () => {
  await relay?.close();
  await customer?.drop();
  await h?.close();
});

const metadataDb = () => h.pgDatabase!.name;

async function add(token: string, body: Record<string, unknown>) {
  return h.call("POST", "/databases/add_db_connection", { token, json: { db_type: "postgresql", username: PG.user, db_password: "x", ...body } });
}

describe("POST /databases/add_db_connection to the metadata database", () => {
  it.each([
    ["127.0.0.1", "its own spelling"],
    ["LOCALHOST", "a name in capitals"],
    ["127.1", "IPv4 shorthand"],
    ["0x7f.0.0.1", "a hexadecimal part"],
    ["2130706433", "one number"],
    ["0.0.0.0", "the unspecified address"],
    ["0", "the unspecified address, short"],
    ["::ffff:127.0.0.1", "IPv4-mapped IPv6"],
    [hostname(), "the machine's host name"],
  ])("refuses %s (%s) with 403", async (host) => {
    const user = await h.newUser();
    const res = await add(user.token, { host, port: PG.port, database_name: metadataDb() });
    expect(res.status, res.text).toBe(403);
    expect(res.body).toMatchObject({ code: "forbidden", detail: "This connection points at Pulse's own metadata database" });
    expect((await h.call("GET", "/databases", { token: user.token })).body).toEqual([]);
  });

  it("refuses a port-forward to it, by what the server says it is", async () => {
    const user = await h.newUser();
    const res = await add(user.token, { host: "127.0.0.1", port: relay.port, database_name: metadataDb() });
    expect(res.status, res.text).toBe(403);
    expect(res.body.detail).toBe("This connection points at Pulse's own metadata database");
  });

  it("refuses a role that may not read the cluster's system identifier, by the server's start time", async () => {
    const role = uniqueName("pulse_norole");
    await pgAdmin(`CREATE ROLE ${role} LOGIN`);
    // Function privileges live in each database's catalog: only the metadata database is changed.
    await h.pgDatabase!.query("REVOKE EXECUTE ON FUNCTION pg_catalog.pg_control_system() FROM PUBLIC");
    try {
      const user = await h.newUser();
      const res = await add(user.token, { host: "127.0.0.1", port: relay.port, database_name: metadataDb(), username: role });
      expect(res.status, res.text).toBe(403);
      expect(res.body.detail).toBe("This connection points at Pulse's own metadata database");
    } finally {
      await h.pgDatabase!.query("GRANT EXECUTE ON FUNCTION pg_catalog.pg_control_system() TO PUBLIC");
      await pgAdmin(`DROP ROLE ${role}`);
    }
  });

  it("refuses to move a saved connection onto it", async () => {
    const user = await h.newUser();
    const saved = await h.call("POST", "/databases/add_db_connection", { token: user.token, json: customer.body });
    expect(saved.status, saved.text).toBe(201);
    const id = saved.body.db_connection.id as number;
    const moved = await h.call("PUT", `/databases/${id}`, {
      token: user.token,
      json: { host: "127.0.0.1", port: relay.port, database_name: metadataDb(), db_password: customer.password },
    });
    expect(moved.status, moved.text).toBe(403);
    expect((await h.call("GET", `/databases/${id}`, { token: user.token })).body.database_name).toBe(customer.body.database_name);
  });

  it("still reaches another database of the same cluster, directly and through the port-forward", async () => {
    const user = await h.newUser();
    for (const [host, port] of [["127.0.0.1", PG.port], ["LOCALHOST", PG.port], ["127.0.0.1", relay.port]] as const) {
      const res = await h.call("POST", "/databases/add_db_connection", { token: user.token, json: { ...customer.body, host, port } });
      expect(res.status, `${host}:${port} ${res.text}`).toBe(201);
      const id = res.body.db_connection.id as number;
      expect((await h.call("POST", `/databases/connect_db/${id}`, { token: user.token })).status).toBe(200);
      const rows = await h.call("POST", `/databases/${id}/query`, { token: user.token, json: { sql: "SELECT count(*) AS n FROM items" } });
      expect(rows.status, rows.text).toBe(200);
    }
  });
});

describe("POST /databases/add_db_connection to Pulse's Redis", () => {
  const redisPort = Number(new URL(REDIS_URL).port);

  it.each([
    ["postgresql", "127.0.0.1"],
    ["postgresql", "localhost"],
    ["mysql", "127.1"],
  ])("refuses %s at %s with 403", async (dbType, host) => {
    const user = await h.newUser();
    const res = await add(user.token, { db_type: dbType, host, port: redisPort, database_name: "x" });
    expect(res.status, res.text).toBe(403);
    expect(res.body.detail).toBe("This connection points at Pulse's own Redis");
  });

  it("refuses line breaks in a user name or database name, which a server of another protocol could read as commands", async () => {
    const user = await h.newUser();
    const key = `${h.redis!.prefix}pwned`;
    for (const field of ["username", "database_name"]) {
      const res = await add(user.token, { host: "127.0.0.1", port: relay.port, database_name: "x", [field]: `x\r\nSET ${key} 1\r\n` });
      expect(res.status, res.text).toBe(422);
      expect(res.body.detail).toBe(`Invalid input: body.${field}: must not contain control characters`);
      expect(res.body.errors).toEqual([{ path: `body.${field}`, message: "must not contain control characters" }]);
    }
    // A host with its port or a scheme: named, with what to do instead.
    for (const host of ["127.0.0.1:5432", "postgres://db.example.com"]) {
      const res = await add(user.token, { host, port: relay.port, database_name: "x" });
      expect(res.status, res.text).toBe(422);
      expect(res.body.errors).toEqual([{ path: "body.host", message: expect.stringContaining("the port goes in port") }]);
    }
    expect(await h.redis!.raw.exists(key)).toBe(0);
  });
});
