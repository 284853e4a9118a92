// An instance that cannot hear the others for a while (its Redis subscription dropped) misses
// the news that another instance read a connection's catalog anew (a refresh, connect_db). Once
// it hears again it reads the catalog again on next use, as if it had heard: without that, its
// connectors kept the schema they had, and its GET /databases/{id}/schema and /ask went on
// answering from it for as long as the connector lived.

import Database from "better-sqlite3";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";
import { startPrivateRedis } from "../support/private-redis.js";
import { uniqueName } from "../support/services.js";
import { startTcpRelay, type TcpRelay } from "../support/tcp-relay.js";

describe("a schema read anew while an instance could not hear", () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let relay: TcpRelay;
  let a: Harness;
  let b: Harness;
  beforeAll(async () => {
    redis = await startPrivateRedis();
    // Only B's link to Redis passes the relay the test cuts.
    relay = await startTcpRelay({ host: "127.0.0.1", port: redis.port });
    a = await createHarness({ sessions: "redis", env: { REDIS_URL: redis.url } });
    b = await createHarness({ shareWith: a, env: { REDIS_URL: `redis://127.0.0.1:${relay.port}` } });
  });
  afterAll(async () => {
    relay?.refuse(false);
    await b?.close();
    await a?.close();
    await relay?.close();
    await redis?.stop();
  });

  it("is read again by that instance once it hears again", async () => {
    const user = await a.newUser();
    const name = `${uniqueName("missed_schema_read")}.sqlite`;
    const file = new Database(path.join(a.sqliteRoot, name));
    try {
      file.exec("CREATE TABLE before_t (id INTEGER PRIMARY KEY)");
      const added = await a.call("POST", "/databases/add_db_connection", { token: user.token, json: { db_type: "sqlite", database_name: name } });
      expect(added.status, added.text).toBe(201);
      const id = added.body.db_connection.id as number;
      const tablesOn = async (h: Harness) => {
        const res = await h.call("GET", `/databases/${id}/schema`, { token: user.token });
        expect(res.status, res.text).toBe(200);
        return (res.body.tables as { name: string }[]).map((t) => t.name).sort();
      };
      expect(await tablesOn(b)).toEqual(["before_t"]); // kept by B's connector from now on

      relay.refuse(true);
      relay.cut();
      await vi.waitFor(() => expect(b.deps.sessions.listening()).toBe(false), { timeout: 5000, interval: 20 });
      file.exec("CREATE TABLE after_t (id INTEGER PRIMARY KEY)");
      // Refreshed on A while B is deaf: the news never reaches B.
      const refreshed = await a.call("POST", `/databases/${id}/schema/refresh`, { token: user.token });
      expect(refreshed.status, refreshed.text).toBe(200);
      relay.refuse(false);
      await vi.waitFor(() => expect(b.deps.sessions.listening()).toBe(true), { timeout: 15_000, interval: 50 });

      expect(await tablesOn(b)).toEqual(["after_t", "before_t"]);
    } finally {
      file.close();
    }
  }, 30_000);
});
