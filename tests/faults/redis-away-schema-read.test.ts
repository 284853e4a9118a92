// Redis going silent just as an instance tells the others it read a connection's catalog anew
// (through a relay the test freezes, never the shared server): the refresh still answers with
// the schema it read, within Redis's command timeout, and says in the log that the news was not
// told. The other instances then keep their older schema until their own next read, as they
// would had the message been lost on the way.

import Database from "better-sqlite3";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";
import { uniqueName } from "../support/services.js";
import { startTcpRelay, type TcpRelay } from "../support/tcp-relay.js";

describe("a schema refresh whose news Redis does not answer", () => {
  let relay: TcpRelay;
  let h: Harness;
  beforeAll(async () => {
    relay = await startTcpRelay({ host: "127.0.0.1", port: 6379 });
    h = await createHarness({ sessions: "redis", env: { REDIS_URL: `redis://127.0.0.1:${relay.port}` } });
  });
  afterAll(async () => {
    relay?.freezeAfter(null);
    await h?.close();
    await relay?.close();
  });

  it("answers with the schema it read, and logs that the other instances were not told", async () => {
    const user = await h.newUser();
    const name = `${uniqueName("schema_news")}.sqlite`;
    const file = new Database(path.join(h.sqliteRoot, name));
    try {
      file.exec("CREATE TABLE before_t (id INTEGER PRIMARY KEY)");
      const added = await h.call("POST", "/databases/add_db_connection", { token: user.token, json: { db_type: "sqlite", database_name: name } });
      expect(added.status, added.text).toBe(201);
      const id = added.body.db_connection.id as number;
      file.exec("CREATE TABLE after_t (id INTEGER PRIMARY KEY)");

      // The publication reaches Redis; its reply, and everything after it on that socket, is lost.
      relay.freezeAfter("schema-reads");
      const refreshed = await h.call("POST", `/databases/${id}/schema/refresh`, { token: user.token });
      expect(refreshed.status, refreshed.text).toBe(200);
      expect(refreshed.body.tables.map((t: { name: string }) => t.name).sort()).toEqual(["after_t", "before_t"]);
      expect(h.logs.join("")).toContain("telling other instances of a schema read anew failed");
    } finally {
      file.close();
      relay.freezeAfter(null);
      relay.cut();
      await vi.waitFor(async () => expect((await h.call("GET", "/health")).status).toBe(200), { timeout: 15_000, interval: 100 });
    }
  }, 30_000); // bounded by the command timeout (2 s), not left to wait on a silent socket
});
