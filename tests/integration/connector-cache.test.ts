// The connector cache: LRU bound, idle close, eviction, and no leaked server connections after
// many sessions are opened and closed on real PostgreSQL and MariaDB.

import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

import { ConnectorCache } from "../../src/connectors/cache.js";
import { APPLICATION_NAME } from "../../src/connectors/drivers/postgres.js";
import { connectorFor } from "../../src/connectors/saved-connection.js";
import type { ConnectionTarget } from "../../src/connectors/types.js";
import { createLogger } from "../../src/logger.js";
import { createHarness, type Harness } from "../support/harness.js";
import { mariaAdmin, PG, pgAdmin, uniqueName } from "../support/services.js";
import { mariaTarget, postgresTarget, sqliteTarget, type TargetDb } from "../support/targets.js";

const options = {
  maxEntries: 3,
  idleMs: 60_000,
  pool: { maxConnections: 2, idleTimeoutMs: 60_000 },
  // Far above the slow statements below (1-2 s on a quiet machine, over 5 s with three other
  // test files on the same two cores): they must finish, not time out.
  limits: { maxRows: 100, maxBytes: 1_000_000, timeoutMs: 30_000 },
  budget: { concurrency: 2, maxWaiting: 2, perMinute: 1000, maxWaitMs: 1000 },
  userBudget: { concurrency: 4, maxWaiting: 4, perMinute: 2000, maxWaitMs: 1000 },
};

let h: Harness;
beforeAll(async () => {
  h = await createHarness({ env: { LOGIN_MAX_ATTEMPTS_PER_CLIENT: "100000" } });
});
afterAll(async () => h?.close());

async function sqliteTargets(n: number): Promise<ConnectionTarget[]> {
  const targets: ConnectionTarget[] = [];
  for (let i = 0; i < n; i++) {
    const t = await sqliteTarget(h.sqliteRoot);
    targets.push({ dialect: "sqlite", host: "", port: 0, database: t.body.database_name as string, username: "", password: "", ssl: false, filePath: `${h.sqliteRoot}/${t.body.database_name}`, connectTimeoutMs: 10_000 });
  }
  return targets;
}

describe("ConnectorCache", () => {
  it("keeps at most maxEntries connectors, closing the least recently used", async () => {
    const cache = new ConnectorCache(options, createLogger("silent"));
    const targets = await sqliteTargets(5);
    const connectors = [];
    for (const [i, target] of targets.entries()) {
      connectors.push(await cache.get(i + 1, 1, async () => target));
      if (i === 1) await cache.get(1, 1, async () => targets[0]!); // touch #1: #2 is now the oldest
    }
    await new Promise((r) => setTimeout(r, 100));
    expect(cache.size).toBe(3);
    expect([1, 2, 3, 4, 5].map((id) => cache.has(id))).toEqual([false, false, true, true, true]);
    expect(connectors[1]!.driver.openConnections()).toBe(0);
    await cache.close();
    expect(connectors.every((c) => c.driver.openConnections() === 0)).toBe(true);
  });

  it("makes room from whoever holds more than a quarter of it, so one user's many connections do not push another's out", async () => {
    const cache = new ConnectorCache({ ...options, maxEntries: 8 }, createLogger("silent"));
    const targets = await sqliteTargets(10);
    // User 2's connector is the least recently used of all when user 1 opens its ninth.
    await cache.get(100, 2, async () => targets[0]!);
    for (let i = 1; i <= 8; i++) await cache.get(i, 1, async () => targets[i]!);
    await new Promise((r) => setTimeout(r, 100));
    expect(cache.size).toBe(8);
    expect(cache.has(100)).toBe(true);
    expect(cache.has(1)).toBe(false);
    // Only its own oldest made room.
    for (let i = 2; i <= 8; i++) expect(cache.has(i)).toBe(true);
    await cache.close();
  });

  it.each(["sqlite", "mysql"] as const)("lets a connector evicted for room finish the statement running on it (%s), then closes it", async (dialect) => {
    const cache = new ConnectorCache(options, createLogger("silent"));
    const owned: TargetDb[] = [];
    const targetOf = async (): Promise<ConnectionTarget> => {
      if (dialect === "sqlite") return (await sqliteTargets(1))[0]!;
      const t = await mariaTarget();
      owned.push(t);
      return { dialect: "mysql", host: String(t.body.host), port: Number(t.body.port), database: String(t.body.database_name), username: String(t.body.username), password: t.password, ssl: false, connectTimeoutMs: 10_000 };
    };
    try {
      const targets = [await targetOf(), await targetOf(), await targetOf(), await targetOf()];
      const busy = await cache.get(1, 1, async () => targets[0]!);
      const slow =
        dialect === "sqlite"
          ? "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000000) SELECT count(*) AS n FROM c"
          : "SELECT sum(seq % 7) AS n FROM seq_1_to_30000000";
      const running = busy.query(slow);
      await new Promise((r) => setTimeout(r, 200));
      // Three more connections: the busy one is the least recently used, and goes.
      for (const id of [2, 3, 4]) await cache.get(id, 1, async () => targets[id - 1]!);
      expect(cache.has(1)).toBe(false);
      expect((await running).row_count).toBe(1);
      await new Promise((r) => setTimeout(r, 100));
      expect(busy.driver.openConnections()).toBe(0);
    } finally {
      await cache.close();
      for (const t of owned) await t.drop();
    }
  }, 60_000);

  it("waits, as it closes, for the statements still running on connectors it let go of", async () => {
    const cache = new ConnectorCache(options, createLogger("silent"));
    const [target] = await sqliteTargets(1);
    const busy = await cache.get(1, 1, async () => target!);
    const running = busy.query("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000000) SELECT count(*) AS n FROM c");
    let ended = false;
    void running.then(() => (ended = true));
    await new Promise((r) => setTimeout(r, 200));
    cache.evictHere(1);
    await cache.close();
    expect(ended).toBe(true);
    expect((await running).row_count).toBe(1);
  });

  it("shares one opening between concurrent misses and forgets a failed opening", async () => {
    const cache = new ConnectorCache(options, createLogger("silent"));
    const [target] = await sqliteTargets(1);
    const [a, b] = await Promise.all([cache.get(9, 1, async () => target!), cache.get(9, 1, async () => target!)]);
    expect(a).toBe(b);
    expect(a.driver.openConnections()).toBeLessThanOrEqual(1);
    await expect(cache.get(10, 1, async () => ({ ...target!, filePath: "/nonexistent/x.sqlite", database: "x.sqlite" }))).rejects.toThrow();
    expect(cache.has(10)).toBe(false);
    await cache.close();
  });

  it("never answers the owner with another user's failed load of the same connection", async () => {
    const cache = new ConnectorCache(options, createLogger("silent"));
    const [target] = await sqliteTargets(1);
    // Another user asks for connection 11 first: their load (the ownership read) fails, slowly.
    const stranger = cache.get(11, 2, () => new Promise((_, reject) => setTimeout(() => reject(new Error("Database connection not found")), 100)));
    const owner = cache.get(11, 1, async () => target!);
    await expect(stranger).rejects.toThrow("not found");
    const connector = await owner;
    expect(connector.ownerId).toBe(1);
    expect(await cache.get(11, 2, async () => target!)).toBe(connector);
    await cache.close();
  });

  it("loads the target again when the connection is evicted (updated) while it was being loaded", async () => {
    const cache = new ConnectorCache(options, createLogger("silent"));
    const [before, after] = await sqliteTargets(2);
    const served = [before!, after!];
    const load = () => new Promise<ConnectionTarget>((resolve) => setTimeout(() => resolve(served.shift()!), 50));
    const pending = cache.get(12, 1, load);
    await new Promise((r) => setTimeout(r, 10));
    cache.evictHere(12);
    const connector = await pending;
    expect(served).toHaveLength(0);
    expect(connector.targetKey).toContain(after!.database);
    expect(await cache.get(12, 1, load)).toBe(connector);
    await cache.close();
  });

  it("closes connectors idle for longer than idleMs", async () => {
    const cache = new ConnectorCache({ ...options, idleMs: 1000 }, createLogger("silent"));
    const [target] = await sqliteTargets(1);
    const connector = await cache.get(1, 1, async () => target!);
    await connector.query("SELECT 1");
    await cache.closeIdle(Date.now() + 500);
    expect(cache.has(1)).toBe(true);
    await cache.closeIdle(Date.now() + 5000);
    expect(cache.has(1)).toBe(false);
    expect(connector.driver.openConnections()).toBe(0);
    await cache.close();
  });
});

describe("ConnectorCache budgets", () => {
  it("gives connectors of one database one budget, and forgets it once none is open", async () => {
    const cache = new ConnectorCache(options, createLogger("silent"));
    const [target] = await sqliteTargets(1);
    const [first, second] = [await cache.get(1, 1, async () => target!), await cache.get(2, 2, async () => target!)];
    expect(first.targetKey).toBe(second.targetKey);
    expect(cache.budgetCount).toEqual({ targets: 1, users: 2 });
    // Evicting forgets at once and lets go of the budgets as the connector closes.
    cache.evictHere(1);
    await vi.waitFor(() => expect(cache.budgetCount).toEqual({ targets: 1, users: 1 }));
    cache.evictHere(2);
    await vi.waitFor(() => expect(cache.budgetCount).toEqual({ targets: 0, users: 0 }));
    await cache.close();
  });

  it("remembers a spent budget after its connectors close, so reopening gives no fresh allowance", async () => {
    const spendable = { concurrency: 2, maxWaiting: 2, perMinute: 1, maxWaitMs: 1000 };
    const cache = new ConnectorCache({ ...options, budget: spendable, userBudget: spendable }, createLogger("silent"));
    const [target] = await sqliteTargets(1);
    await (await cache.get(1, 1, async () => target!)).query("SELECT 1");
    cache.evictHere(1);
    await cache.closeIdle();
    expect(cache.budgetCount).toEqual({ targets: 1, users: 1 });
    // Another user's connection: its own user budget is fresh, the database's is spent.
    await expect((await cache.get(2, 2, async () => target!)).query("SELECT 1")).rejects.toThrow(/Query budget of this database is spent/);
    await cache.close();
  });
});

describe("saved connections to one database", () => {
  it.each(["postgresql", "mysql"] as const)("share one pool per login on %s: the database sees the sockets of one", async (dialect) => {
    const target = dialect === "postgresql" ? await postgresTarget() : await mariaTarget();
    const other = await mariaOrPgLogin(dialect, target);
    try {
      const owner = await h.newUser();
      const add = async (body: Record<string, unknown>) => (await h.call("POST", "/databases/add_db_connection", { token: owner.token, json: body })).body.db_connection.id as number;
      const ids = [];
      for (let i = 0; i < 6; i++) ids.push(await add({ ...target.body, name: `copy ${i}` }));
      const pools = h.deps.connectors.poolCount;
      // A statement on each, two at a time: six pools would each keep a socket open.
      for (let i = 0; i < ids.length; i += 2) {
        const answers = await Promise.all(ids.slice(i, i + 2).map((id) => h.call("POST", `/databases/${id}/query`, { token: owner.token, json: { sql: "SELECT 1 AS one" } })));
        expect(answers.map((a) => a.status)).toEqual([200, 200]);
      }
      expect(h.deps.connectors.poolCount - pools).toBe(1);
      expect(await backends(dialect, target)).toBeLessThanOrEqual(2);
      // Another login to the same database has a pool of its own.
      const otherId = await add({ ...target.body, ...other.body });
      expect((await h.call("POST", `/databases/${otherId}/query`, { token: owner.token, json: { sql: "SELECT 1 AS one" } })).status).toBe(200);
      expect(h.deps.connectors.poolCount - pools).toBe(2);
    } finally {
      await other.drop();
      await target.drop();
    }
  });
});

describe("a pool shared by two users' connections", () => {
  it("keeps a socket for monitoring when the other user's reads fill the interactive share", async () => {
    const target = await postgresTarget();
    const locker = new pg.Client({ ...PG, database: String(target.body.database_name) });
    await locker.connect();
    try {
      const [a, b] = [await h.newUser(), await h.newUser()];
      const add = async (user: { token: string }) => (await h.call("POST", "/databases/add_db_connection", { token: user.token, json: target.body })).body.db_connection.id as number;
      const [aId, bId] = [await add(a), await add(b)];
      const [aConnector, bConnector] = [await connectorFor(h.deps, a.id, aId), await connectorFor(h.deps, b.id, bId)];
      await locker.query("BEGIN");
      await locker.query("LOCK TABLE items IN ACCESS EXCLUSIVE MODE");
      // The first user's reads take every slot their budget allows (CONNECTION_MAX_CONCURRENCY).
      const waiting = Array.from({ length: 4 }, () => aConnector.query("SELECT count(*) FROM items").catch((err: unknown) => err));
      await new Promise((r) => setTimeout(r, 300));
      const check = await bConnector.query("SELECT 1 AS one", { budget: h.deps.monitoring.budgetFor(bConnector), source: "monitor" });
      expect(check.rows).toEqual([[1]]);
      await locker.query("COMMIT");
      await Promise.all(waiting);
    } finally {
      await locker.end();
      await target.drop();
    }
  });

  it("keeps apart connections that name the host differently, and SQLite files, whose one process runs one statement at a time", async () => {
    const target = await postgresTarget();
    try {
      const user = await h.newUser();
      const pools = h.deps.connectors.poolCount;
      for (const host of ["localhost", "127.0.0.1"]) {
        const id = (await h.call("POST", "/databases/add_db_connection", { token: user.token, json: { ...target.body, host } })).body.db_connection.id as number;
        expect((await h.call("POST", `/databases/${id}/query`, { token: user.token, json: { sql: "SELECT 1 AS one" } })).status).toBe(200);
      }
      expect(h.deps.connectors.poolCount - pools).toBe(2);
    } finally {
      await target.drop();
    }
    // One user's long read of a SQLite file holds no other user's read of it.
    const file = await sqliteTarget(h.sqliteRoot);
    const [a, b] = [await h.newUser(), await h.newUser()];
    const add = async (user: { token: string }) => (await h.call("POST", "/databases/add_db_connection", { token: user.token, json: file.body })).body.db_connection.id as number;
    const [aConnector, bConnector] = [await connectorFor(h.deps, a.id, await add(a)), await connectorFor(h.deps, b.id, await add(b))];
    const long = aConnector.query("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000000) SELECT count(*) AS n FROM c").catch((err: unknown) => err);
    await new Promise((r) => setTimeout(r, 200));
    const started = performance.now();
    expect((await bConnector.query("SELECT 1 AS one")).rows).toEqual([[1]]);
    expect(performance.now() - started).toBeLessThan(1000);
    await long;
  });
});

/** Pulse's connections to `target`'s database (PostgreSQL, by the driver's application_name) or
 * of its user (MariaDB) now. Not every backend of the database: the server's own (an autovacuum
 * worker) and the setup's sessions come and go on their own time. */
async function backends(dialect: "postgresql" | "mysql", target: TargetDb): Promise<number> {
  if (dialect === "postgresql") return pulseBackendsOn(target);
  return Number((await mariaAdmin<{ n: number }>(`SELECT count(*) AS n FROM information_schema.PROCESSLIST WHERE USER = '${target.body.username}'`))[0]!.n);
}

async function pulseBackendsOn(target: TargetDb): Promise<number> {
  return Number(
    (await pgAdmin<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = $2", "test", [target.body.database_name, APPLICATION_NAME]))[0]!.n,
  );
}

/** A second login to `target`'s database: another role (PostgreSQL) or user (MariaDB). */
async function mariaOrPgLogin(dialect: "postgresql" | "mysql", target: TargetDb): Promise<{ body: Record<string, unknown>; drop: () => Promise<void> }> {
  const name = uniqueName("pulse_other").slice(0, 60);
  if (dialect === "postgresql") {
    await pgAdmin(`CREATE ROLE ${name} LOGIN PASSWORD 'other'`, "test");
    await pgAdmin(`GRANT CONNECT ON DATABASE ${String(target.body.database_name)} TO ${name}`, "test");
    return { body: { username: name, db_password: "other" }, drop: async () => void (await pgAdmin(`DROP ROLE IF EXISTS ${name}`, "test").catch(() => undefined)) };
  }
  await mariaAdmin(`CREATE USER '${name}'@'%' IDENTIFIED BY 'other'`);
  await mariaAdmin(`CREATE USER '${name}'@'localhost' IDENTIFIED BY 'other'`);
  await mariaAdmin(`GRANT SELECT ON \`${String(target.body.database_name)}\`.* TO '${name}'@'%'`);
  await mariaAdmin(`GRANT SELECT ON \`${String(target.body.database_name)}\`.* TO '${name}'@'localhost'`);
  return {
    body: { username: name, db_password: "other" },
    drop: async () => {
      await mariaAdmin(`DROP USER IF EXISTS '${name}'@'%'`);
      await mariaAdmin(`DROP USER IF EXISTS '${name}'@'localhost'`);
    },
  };
}

describe("server connections after 100 sessions", () => {
  const servers: [string, () => Promise<TargetDb>, (t: TargetDb) => Promise<number>][] = [
    [
      "postgresql",
      postgresTarget,
      pulseBackendsOn,
    ],
    [
      "mysql",
      mariaTarget,
      async (t) => Number((await mariaAdmin<{ n: number }>(`SELECT count(*) AS n FROM information_schema.PROCESSLIST WHERE USER = '${t.body.username}'`))[0]!.n),
    ],
  ];

  it.each(servers)("returns %s's connection count to its baseline", async (_name, makeTarget, count) => {
    const target = await makeTarget();
    try {
      const baseline = await count(target);
      const owner = await h.newUser();
      const id = (await h.call("POST", "/databases/add_db_connection", { token: owner.token, json: target.body })).body.db_connection.id;
      let peak = 0;
      for (let i = 0; i < 100; i++) {
        const login = await h.call("POST", "/login", { form: { username: owner.email, password: owner.password } });
        const token = login.body.access_token;
        expect((await h.call("POST", `/databases/connect_db/${id}`, { token })).status).toBe(200);
        expect((await h.call("POST", "/query", { token, json: { sql: "SELECT 1" } })).status).toBe(200);
        if (i % 25 === 0) peak = Math.max(peak, await count(target));
        expect((await h.call("POST", "/databases/disconnect-session", { token })).status).toBe(200);
      }
      expect(peak).toBeGreaterThan(baseline);
      for (let i = 0; i < 50 && (await count(target)) > baseline; i++) await new Promise((r) => setTimeout(r, 100));
      expect(await count(target)).toBe(baseline);
    } finally {
      await target.drop();
    }
  });
});
