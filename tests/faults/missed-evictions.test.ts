// An instance that cannot hear the others for a while (its Redis subscription dropped) may miss
// the news that a connection was deleted or moved to another server: its cached connector would
// go on reaching the old target. When the subscription drops, it closes every cached connector;
// each reopens from the connection's row on its next use.

import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

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

  it("closes its cached connectors when its subscription drops, so a connection deleted meanwhile is not reached", async () => {
    const user = await a.newUser();
    const created = await a.call("POST", "/databases/add_db_connection", { token: user.token, json: (await sqliteTarget(a.sqliteRoot)).body });
    const id = created.body.db_connection.id as number;
    const query = () => b.call("POST", `/databases/${id}/query`, { token: user.token, json: { sql: "SELECT 1 AS one" } });
    expect((await query()).status).toBe(200);
    expect(b.deps.connectors.has(id)).toBe(true);

    relay.refuse(true);
    relay.cut();
    await vi.waitFor(() => expect(b.deps.sessions.listening()).toBe(false), { timeout: 5000, interval: 20 });
    // Deleted on A while B is deaf: the eviction never reaches B.
    expect((await a.call("DELETE", `/databases/${id}`, { token: user.token })).status).toBe(204);
    await vi.waitFor(() => expect(b.deps.connectors.has(id)).toBe(false), { timeout: 5000, interval: 20 });

    relay.refuse(false);
    await vi.waitFor(() => expect(b.deps.sessions.listening()).toBe(true), { timeout: 15_000, interval: 50 });
    expect((await query()).status).toBe(404);
  }, 30_000);
});
