// A PostgreSQL server that answers wrongly (a huge value to Pulse's own catalog statements, a
// row that does not match its columns, no row at all) fails the one request, and the process
// goes on: each of these ended it, inside pg's socket handler, or answered 500.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";
import { startHostilePostgres, type HostileMode, type HostilePostgres } from "../support/hostile-postgres.js";

describe("a hostile PostgreSQL server", () => {
  let h: Harness;
  const servers: HostilePostgres[] = [];
  beforeAll(async () => {
    h = await createHarness();
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.close()));
    await h?.close();
  });

  async function connectTo(mode: HostileMode, token: string) {
    const server = await startHostilePostgres(mode);
    servers.push(server);
    const body = { db_type: "postgresql", host: "127.0.0.1", port: server.port, database_name: "x", username: "x", db_password: "x" };
    return h.call("POST", "/databases/add_db_connection", { token, json: body });
  }

  it("answering the identity check with a 300 MiB value: 403, the check failing closed once 256 MiB arrived, and the process goes on", async () => {
    const user = await h.newUser();
    const res = await connectTo("huge-answer", user.token);
    expect({ status: res.status, code: res.body.code }).toEqual({ status: 403, code: "forbidden" });
    expect(res.body.detail).toContain("more than 256 MiB");
    expect((await h.call("GET", "/health")).status).toBe(200);
  });

  it("answering the probe with a 300 MiB value (embedded store: no identity check): 400 connection_failed, and the process goes on", async () => {
    // The 256 MiB arrive during the session setup, within CONNECT_TIMEOUT_MS with the rest of
    // the connect: room for a loaded machine.
    const embedded = await createHarness({ store: "pglite", env: { CONNECT_TIMEOUT_MS: "10000" } });
    const server = await startHostilePostgres("huge-answer");
    try {
      const user = await embedded.newUser();
      const body = { db_type: "postgresql", host: "127.0.0.1", port: server.port, database_name: "x", username: "x", db_password: "x" };
      const res = await embedded.call("POST", "/databases/add_db_connection", { token: user.token, json: body });
      expect({ status: res.status, code: res.body.code }).toEqual({ status: 400, code: "connection_failed" });
      expect(res.body.detail).toContain("more than 256 MiB");
      expect((await embedded.call("GET", "/health")).status).toBe(200);
    } finally {
      await server.close();
      await embedded.close();
    }
  });

  it("answering the probe with no row: 400 connection_failed, not 500", async () => {
    const user = await h.newUser();
    const res = await connectTo("no-rows", user.token);
    expect({ status: res.status, code: res.body.code }).toEqual({ status: 400, code: "connection_failed" });
  });

  it("sending a row of two values for one column: 502 connection_lost for that statement, and the process goes on", async () => {
    const user = await h.newUser();
    const added = await connectTo("bad-row", user.token);
    expect(added.status, added.text).toBe(201);
    const id = added.body.db_connection.id as number;
    const res = await h.call("POST", `/databases/${id}/query`, { token: user.token, json: { sql: "SELECT 1" } });
    expect({ status: res.status, code: res.body.code }).toEqual({ status: 502, code: "connection_lost" });
    expect(res.body.detail).toContain("a row of 2 values for 1 columns");
    expect((await h.call("GET", "/health")).status).toBe(200);
  });

  it("refusing Pulse's session setup and never closing the connection: answered within the connect timeout, not held for good", async () => {
    const user = await h.newUser();
    // The harness's CONNECT_TIMEOUT_MS is 3 s: the identity check is refused at once, and
    // saying goodbye to a server that never closes must not be waited for.
    const res = await Promise.race([connectTo("refuse-and-linger", user.token), new Promise<null>((resolve) => setTimeout(() => resolve(null), 8_000))]);
    expect(res, "no answer within 8 s").not.toBeNull();
    expect({ status: res!.status, code: res!.body.code }).toEqual({ status: 403, code: "forbidden" });
    expect(res!.body.detail).toContain("not here");
  });
});
