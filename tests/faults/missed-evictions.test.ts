// An instance that cannot hear the others for a while (its Redis subscription dropped) may miss
// the news that a connection was deleted or moved to another server: its cached connector would
// go on reaching the old target. After such a gap each cached connector is checked against its
// connection on its next use: closed if the connection is gone or changed, kept (with whatever
// runs on it) if not.

import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

import { connectorFor } from "../../src/connectors/saved-connection.js";
import { createHarness, type Harness } from "../support/harness.js";
import { sqliteTarget } from "../support/targets.js";
import { startTcpRelay, type TcpRelay } from "../support/tcp-relay.js";

describe("connector evictions missed while an instance could not hear", () => {
  let a: Harness;
  let b: Harness;
  let relay: TcpRelay;
  beforeAll(async () => {
    relay = await startTcpRelay({ host: "127.0.0.1", port: 6379 });
    a = await createHarness({ sessions: "redis" });
    b = await createHarness({ shareWith: a, env: { REDIS_URL: `redis://127.0.0.1:${relay.port}` } });
  });
  afterAll(async () => {
    relay?.refuse(false);
    await b?.close();
    await a?.close();
    await relay?.close();
  });

  it("checks each connector against its connection on its next use: a deleted one is not reached, an unchanged one is kept", async () => {
    const user = await a.newUser();
    const add = async () =>
      (await a.call("POST", "/databases/add_db_connection", { token: user.token, json: (await sqliteTarget(a.sqliteRoot)).body })).body.db_connection.id as number;
    const [deleted, unchanged] = [await add(), await add()];
    const query = (id: number) => b.call("POST", `/databases/${id}/query`, { token: user.token, json: { sql: "SELECT 1 AS one" } });
    for (const id of [deleted, unchanged]) expect((await query(id)).status).toBe(200);
    const kept = await b.deps.connectors.get(unchanged, user.id, () => Promise.reject(new Error("cached")));

    relay.refuse(true);
    relay.cut();
    await vi.waitFor(() => expect(b.deps.sessions.listening()).toBe(false), { timeout: 5000, interval: 20 });
    // Deleted on A while B is deaf: the eviction never reaches B.
    expect((await a.call("DELETE", `/databases/${deleted}`, { token: user.token })).status).toBe(204);
    relay.refuse(false);
    await vi.waitFor(() => expect(b.deps.sessions.listening()).toBe(true), { timeout: 15_000, interval: 50 });

    expect((await query(deleted)).status).toBe(404);
    expect(b.deps.connectors.has(deleted)).toBe(false);
    expect((await query(unchanged)).status).toBe(200);
    expect(await b.deps.connectors.get(unchanged, user.id, () => Promise.reject(new Error("cached")))).toBe(kept);
  }, 30_000);
});

describe("a connector eviction its instance could not announce", () => {
  let a: Harness;
  let b: Harness;
  let relay: TcpRelay;
  beforeAll(async () => {
    relay = await startTcpRelay({ host: "127.0.0.1", port: 6379 });
    // B hears everything (no gap); A, which deletes, cannot tell it.
    b = await createHarness({ sessions: "redis", env: { TOKEN_RECHECK_SECONDS: "1" } });
    a = await createHarness({ shareWith: b, env: { REDIS_URL: `redis://127.0.0.1:${relay.port}` } });
  });
  afterAll(async () => {
    relay?.refuse(false);
    await a?.close();
    await b?.close();
    await relay?.close();
  });

  it("is caught by the other instance within TOKEN_RECHECK_SECONDS, when it reads the connection again", async () => {
    const user = await b.newUser();
    const id = (await b.call("POST", "/databases/add_db_connection", { token: user.token, json: (await sqliteTarget(b.sqliteRoot)).body })).body.db_connection.id as number;
    const query = () => b.call("POST", `/databases/${id}/query`, { token: user.token, json: { sql: "SELECT 1 AS one" } });
    expect((await query()).status).toBe(200);
    relay.refuse(true);
    relay.cut();
    await vi.waitFor(() => expect(a.deps.sessions.listening()).toBe(false), { timeout: 5000, interval: 20 });
    expect((await a.call("DELETE", `/databases/${id}`, { token: user.token })).status).toBe(204);
    expect(b.deps.sessions.listening()).toBe(true);
    await vi.waitFor(async () => expect((await query()).status).toBe(404), { timeout: 5000, interval: 250 });
    expect(b.deps.connectors.has(id)).toBe(false);
  }, 30_000);

  it("checks a busy connection once for all the requests that find it unchecked at once", async () => {
    const user = await b.newUser();
    const id = (await b.call("POST", "/databases/add_db_connection", { token: user.token, json: (await sqliteTarget(b.sqliteRoot)).body })).body.db_connection.id as number;
    expect((await b.call("POST", `/databases/${id}/query`, { token: user.token, json: { sql: "SELECT 1" } })).status).toBe(200);
    // The store's reads, counted.
    let reads = 0;
    const db = new Proxy(b.deps.store.db, {
      get(target, property, receiver) {
        if (property === "select") reads++;
        return Reflect.get(target, property, receiver) as unknown;
      },
    });
    const deps = { ...b.deps, store: { ...b.deps.store, db } };
    await new Promise((resolve) => setTimeout(resolve, 1_100)); // past TOKEN_RECHECK_SECONDS
    const connectors = await Promise.all(Array.from({ length: 50 }, () => connectorFor(deps, user.id, id)));
    expect(new Set(connectors).size).toBe(1);
    expect(reads).toBe(1);
  });
});
