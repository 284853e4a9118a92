// Redis going silent just as an instance tells the others it read a connection's catalog anew
// (through a relay the test freezes, never the shared server): the refresh still answers with
// the schema it read, within Redis's command timeout, and says in the log that the news was not
// told. Had the news not reached Redis at all, the other instances keep their older schema, but
// only until it is SCHEMA_MAX_AGE_SECONDS old: then they read the catalog again on next use.

import Database from "better-sqlite3";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";
import { uniqueName } from "../support/services.js";
import { startTcpRelay, type TcpRelay } from "../support/tcp-relay.js";

/** Longer than a refresh waits on the silent Redis (its command timeout, 2 s), and short. */
const MAX_AGE_SECONDS = 5;

describe("a schema refresh whose news Redis does not answer", () => {
  let relay: TcpRelay;
  let h: Harness;
  /** Another instance, whose link to Redis does not pass the relay. */
  let other: Harness;
  beforeAll(async () => {
    relay = await startTcpRelay({ host: "127.0.0.1", port: 6379 });
    const env = { SCHEMA_MAX_AGE_SECONDS: String(MAX_AGE_SECONDS) };
    h = await createHarness({ sessions: "redis", env: { ...env, REDIS_URL: `redis://127.0.0.1:${relay.port}` } });
    other = await createHarness({ shareWith: h, env });
  });
  afterAll(async () => {
    relay?.freezeAfter(null);
    relay?.freezeOn(null);
    await other?.close();
    await h?.close();
    await relay?.close();
  });

  /** Redis answering again on `h`'s link (its frozen connections dropped). */
  async function recovered() {
    relay.freezeAfter(null);
    relay.freezeOn(null);
    relay.cut();
    await vi.waitFor(async () => expect((await h.call("GET", "/health")).status).toBe(200), { timeout: 15_000, interval: 100 });
  }

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
      await recovered();
    }
  }, 30_000); // bounded by the command timeout (2 s), not left to wait on a silent socket

  it("leaves another instance that never heard the news its older schema only until SCHEMA_MAX_AGE_SECONDS", async () => {
    const user = await h.newUser();
    const name = `${uniqueName("schema_news_lost")}.sqlite`;
    const file = new Database(path.join(h.sqliteRoot, name));
    try {
      file.exec("CREATE TABLE before_t (id INTEGER PRIMARY KEY)");
      const added = await h.call("POST", "/databases/add_db_connection", { token: user.token, json: { db_type: "sqlite", database_name: name } });
      expect(added.status, added.text).toBe(201);
      const id = added.body.db_connection.id as number;
      const tablesOnOther = async () => {
        const res = await other.call("GET", `/databases/${id}/schema`, { token: user.token });
        expect(res.status, res.text).toBe(200);
        return (res.body.tables as { name: string }[]).map((t) => t.name).sort();
      };
      expect(await tablesOnOther()).toEqual(["before_t"]);
      const readOnOther = performance.now();
      file.exec("CREATE TABLE after_t (id INTEGER PRIMARY KEY)");

      // The publication never reaches Redis: no instance hears of the refresh.
      relay.freezeOn("schema-reads");
      const refreshed = await h.call("POST", `/databases/${id}/schema/refresh`, { token: user.token });
      expect(refreshed.status, refreshed.text).toBe(200);
      expect(refreshed.body.tables.map((t: { name: string }) => t.name).sort()).toEqual(["after_t", "before_t"]);

      // The other instance keeps what it read...
      expect(await tablesOnOther()).toEqual(["before_t"]);
      expect(performance.now() - readOnOther).toBeLessThan(MAX_AGE_SECONDS * 1000);
      // ...until that is SCHEMA_MAX_AGE_SECONDS old, however busy the connection.
      await new Promise((resolve) => setTimeout(resolve, readOnOther + MAX_AGE_SECONDS * 1000 + 100 - performance.now()));
      expect(await tablesOnOther()).toEqual(["after_t", "before_t"]);
    } finally {
      file.close();
      await recovered();
    }
  }, 30_000);
});
