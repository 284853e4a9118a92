// Security: connections to customer databases obey the network policy (TARGET_ALLOW_NETWORKS,
// TARGET_DENY_NETWORKS and the defaults) on the address a host resolves to at every connect,
// not only when the connection is saved, and a user can not use connection tests, or saved
// connections re-pointed by their DNS, to scan ports.
import { networkInterfaces } from "node:os";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";
import { startDnsServer, type DnsServer } from "../support/dns-server.js";
import { monitorTable } from "../support/monitoring.js";
import { PG } from "../support/services.js";
import { postgresTarget, type TargetDb } from "../support/targets.js";
import { startTcpRelay, type TcpRelay } from "../support/tcp-relay.js";

let customer: TargetDb;
const harnesses: Harness[] = [];

async function harness(env: Record<string, string>, sessions: "memory" | "redis" = "memory") {
  const h = await createHarness({ store: "postgresql", sessions, env });
  harnesses.push(h);
  return h;
}

beforeAll(async () => {
  customer = await postgresTarget();
});
afterAll(async () => {
  for (const h of harnesses) await h.close();
  await customer?.drop();
});

const add = (h: Harness, token: string, body: Record<string, unknown>) =>
  h.call("POST", "/databases/add_db_connection", { token, json: { ...customer.body, ...body } });

describe("POST /databases/add_db_connection", () => {
  let dev: Harness;
  beforeAll(async () => {
    dev = await harness({});
  });

  it.each([
    ["169.254.169.254", "link-local"], // cloud metadata
    ["::ffff:169.254.169.254", "link-local"],
    ["64:ff9b::a9fe:a9fe", "link-local"], // NAT64 form
    ["fe80::1", "link-local"],
    ["224.0.0.1", "multicast"],
    ["0.0.0.0", "unspecified"],
    ["255.255.255.255", "reserved"],
  ])("refuses %s (%s) in every mode with 403 naming TARGET_ALLOW_NETWORKS", async (host, kind) => {
    const user = await dev.newUser();
    const res = await add(dev, user.token, { host });
    expect(res.status, res.text).toBe(403);
    expect(res.body.code).toBe("forbidden");
    expect(res.body.detail).toContain(kind);
    expect(res.body.detail).toContain("TARGET_ALLOW_NETWORKS");
  });

  it("reaches loopback outside production, so the quick start works", async () => {
    const user = await dev.newUser();
    expect((await add(dev, user.token, { host: "localhost" })).status).toBe(201);
  });

  it("in production, refuses loopback by address and by name unless TARGET_ALLOW_NETWORKS allows it", async () => {
    const production = await harness({ NODE_ENV: "production" }, "redis");
    const user = await production.newUser();
    for (const host of ["127.0.0.1", "localhost", "::ffff:127.0.0.1"]) {
      const res = await add(production, user.token, { host });
      expect(res.status, `${host}: ${res.text}`).toBe(403);
      expect(res.body.detail).toMatch(/loopback address.*TARGET_ALLOW_NETWORKS/);
    }
    const allowing = await harness({ NODE_ENV: "production", TARGET_ALLOW_NETWORKS: "127.0.0.1/32" }, "redis");
    const other = await allowing.newUser();
    expect((await add(allowing, other.token, { host: "localhost" })).status).toBe(201);
  });

  it("in production, refuses this machine's own interface address (a service listening on all interfaces) unless allowed", async () => {
    const own = Object.values(networkInterfaces())
      .flat()
      .find((info) => info?.family === "IPv4" && !info.internal)?.address;
    expect(own, "this test needs a non-loopback IPv4 interface").toBeDefined();
    // The customer database, reachable on every interface of this machine.
    const relay = await startTcpRelay({ host: PG.host, port: PG.port }, { host: "0.0.0.0" });
    try {
      const production = await harness({ NODE_ENV: "production" }, "redis");
      const user = await production.newUser();
      for (const host of [own!, `::ffff:${own!}`]) {
        const res = await add(production, user.token, { host, port: relay.port });
        expect(res.status, `${host}: ${res.text}`).toBe(403);
        expect(res.body.detail).toMatch(/address of the machine Pulse runs on.*TARGET_ALLOW_NETWORKS/);
      }
      const allowing = await harness({ NODE_ENV: "production", TARGET_ALLOW_NETWORKS: own! }, "redis");
      const other = await allowing.newUser();
      const allowed = await add(allowing, other.token, { host: own!, port: relay.port });
      expect(allowed.status, allowed.text).toBe(201);
    } finally {
      await relay.close();
    }
  });

  it("refuses every spelling and name of an address in TARGET_DENY_NETWORKS, for PostgreSQL and MySQL", async () => {
    const denying = await harness({ TARGET_DENY_NETWORKS: "10.0.0.0/8, 127.0.0.0/8" });
    const user = await denying.newUser();
    for (const [dbType, host] of [
      ["postgresql", "127.0.0.1"],
      ["postgresql", "localhost"],
      ["postgresql", "127.1"],
      ["postgresql", "::ffff:127.0.0.1"],
      ["postgresql", "10.1.2.3"],
      ["mysql", "localhost"],
      ["mysql", "::ffff:0:10.9.9.9"],
    ]) {
      const res = await add(denying, user.token, { db_type: dbType, host });
      expect(res.status, `${dbType} ${host}: ${res.text}`).toBe(403);
      expect(res.body.detail).toContain("TARGET_DENY_NETWORKS");
    }
    expect((await denying.call("GET", "/databases", { token: user.token })).body).toEqual([]);
  });
});

describe("a host name that resolves differently on the second look (DNS rebinding)", () => {
  let dns: DnsServer;
  let v4: TcpRelay;
  let v6: TcpRelay;
  let h: Harness;
  const name = "db.rebind.test";

  beforeAll(async () => {
    dns = await startDnsServer();
    // The same port on both loopbacks, each forwarding to the real server: without the policy
    // at every connect, both answers would reach the database.
    v4 = await startTcpRelay({ host: PG.host, port: PG.port });
    v6 = await startTcpRelay({ host: PG.host, port: PG.port }, { host: "::1", port: v4.port });
    h = await harness({ TARGET_DNS_SERVERS: dns.address, TARGET_DENY_NETWORKS: "::1/128" });
  });
  afterAll(async () => {
    await v6?.close();
    await v4?.close();
    await dns?.close();
  });

  it("is refused when a pool connects at query time, though the first answer was allowed", async () => {
    dns.answers.set(name, ["127.0.0.1"]);
    const user = await h.newUser();
    const saved = await add(h, user.token, { host: name, port: v4.port });
    expect(saved.status, saved.text).toBe(201);
    const id = saved.body.db_connection.id as number;
    const query = () => h.call("POST", `/databases/${id}/query`, { token: user.token, json: { sql: "SELECT count(*) AS n FROM items" } });
    expect((await query()).status).toBe(200);

    dns.answers.set(name, ["::1"]);
    v4.cut(); // the pool's connections drop: the next statement needs a new one, and a new look
    let res = await query();
    for (let i = 0; i < 3 && res.status === 502; i++) res = await query(); // a connection that broke under a statement
    expect(res.status, res.text).toBe(403);
    expect(res.body.detail).toMatch(new RegExp(`Connections to ${name} are refused: ::1 is in TARGET_DENY_NETWORKS`));
    expect(v6.accepted).toBe(0);
    expect(dns.asked.filter((q) => q === `AAAA ${name}`).length).toBeGreaterThanOrEqual(3); // asked at every connect
  });

  it("is refused when it is saved if one of its addresses is denied", async () => {
    dns.answers.set(name, ["127.0.0.1", "::1"]);
    const user = await h.newUser();
    const res = await add(h, user.token, { host: name, port: v4.port });
    expect(res.status, res.text).toBe(403);
    expect(v6.accepted).toBe(0);
  });
});

describe("connection tests per user (CONNECTION_TESTS_PER_MINUTE)", () => {
  it("counts a schema read anew on demand as one, not a plain read of the schema kept", async () => {
    const h = await harness({ CONNECTION_TESTS_PER_MINUTE: "2" });
    const user = await h.newUser();
    const id = (await add(h, user.token, {})).body.db_connection.id as number; // one
    for (let i = 0; i < 5; i++) expect((await h.call("GET", `/databases/${id}/schema`, { token: user.token })).status).toBe(200);
    expect((await h.call("POST", `/databases/${id}/schema/refresh`, { token: user.token })).status).toBe(200); // two
    const refused = await h.call("POST", `/databases/${id}/schema/refresh`, { token: user.token });
    expect(refused.status).toBe(429);
    expect(refused.body).toMatchObject({ code: "rate_limited", detail: "Too many connection tests, schema refreshes and failed connections this minute (CONNECTION_TESTS_PER_MINUTE); try again later" });
  });

  it("answers 429 with Retry-After past the limit, counting adds, changes and tests alike", async () => {
    const h = await harness({ CONNECTION_TESTS_PER_MINUTE: "3" });
    const scanner = await h.newUser();
    const closedPort = { host: "127.0.0.1", port: 1 };
    const saved = await add(h, scanner.token, {});
    expect(saved.status, saved.text).toBe(201);
    const id = saved.body.db_connection.id as number;
    expect((await h.call("POST", `/databases/${id}/test`, { token: scanner.token })).status).toBe(200);
    expect((await add(h, scanner.token, closedPort)).status).toBe(400);

    for (const attempt of [
      () => add(h, scanner.token, closedPort),
      () => h.call("PUT", `/databases/${id}`, { token: scanner.token, json: { port: 2, db_password: "x" } }),
      () => h.call("POST", `/databases/${id}/test`, { token: scanner.token }),
    ]) {
      const res = await attempt();
      expect(res.status, res.text).toBe(429);
      expect(res.body.code).toBe("rate_limited");
      expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
    }

    const other = await h.newUser();
    expect((await add(h, other.token, closedPort)).status).toBe(400);
  });
});

describe("a saved connection whose name is re-pointed before each use (CONNECTION_TESTS_PER_MINUTE)", () => {
  let dns: DnsServer;
  let pg: TcpRelay;
  /** Another service on the saved port of another address: accepts, then hangs up (not PostgreSQL). */
  let other: TcpRelay;
  let h: Harness;

  beforeAll(async () => {
    dns = await startDnsServer();
    pg = await startTcpRelay({ host: PG.host, port: PG.port });
    other = await startTcpRelay({ host: "127.0.0.1", port: 1 }, { host: "127.0.0.2", port: pg.port });
    other.refuse(true);
    h = await harness({ TARGET_DNS_SERVERS: dns.address, CONNECTION_TESTS_PER_MINUTE: "3" });
  });
  afterAll(async () => {
    vi.useRealTimers();
    await other?.close();
    await pg?.close();
    await dns?.close();
  });

  const asked = (name: string) => dns.asked.filter((q) => q.endsWith(` ${name}`)).length;

  it("counts each connection that could not be made, then refuses it unconnected till the window ends; a healthy one answers", async () => {
    const [a, b] = ["a.rt-scan.test", "b.rt-scan.test"];
    dns.answers.set(a, ["127.0.0.1"]);
    dns.answers.set(b, ["127.0.0.1"]);
    const user = await h.newUser();
    const ids: number[] = [];
    for (const body of [{ host: a, port: pg.port }, { host: b, port: pg.port }, {}]) {
      const saved = await add(h, user.token, body); // the limit's three tries
      expect(saved.status, saved.text).toBe(201);
      ids.push(saved.body.db_connection.id as number);
    }
    const [idA, idB, healthy] = ids as [number, number, number];
    const query = (id: number) => h.call("POST", `/databases/${id}/query`, { token: user.token, json: { sql: "SELECT count(*) AS n FROM items" } });
    expect((await query(idA)).status).toBe(200); // its connector opened, its pool connected
    expect((await query(healthy)).status).toBe(200);
    expect((await h.call("POST", `/databases/${healthy}/test`, { token: user.token })).status).toBe(429);

    // A's pool connects anew (its connections cut), B opens: both to the other address.
    const reached = pg.accepted;
    dns.answers.set(a, ["127.0.0.2"]);
    dns.answers.set(b, ["127.0.0.2"]);
    pg.cut();
    for (const id of [idA, idB]) {
      const accepted = other.accepted;
      let res = await query(id);
      for (let i = 0; i < 3 && res.status === 502; i++) res = await query(id); // a connection that broke under a statement
      // Connected once (it was healthy), and answered as refused: not with what the port said.
      expect(other.accepted).toBe(accepted + 1);
      expect(res.status, res.text).toBe(429);
      expect(res.body.code).toBe("rate_limited");
      expect(res.body.detail).toMatch(/^This database could not be reached too often this minute .*CONNECTION_TESTS_PER_MINUTE.*; retry in \d+ s$/);
      expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
    }

    // Re-pointed again: refused before the name is even looked up.
    const seen = other.accepted;
    const lookups = asked(a) + asked(b);
    for (const ip of ["127.0.0.2", "127.0.0.3", "127.0.0.1"]) {
      dns.answers.set(a, [ip]);
      dns.answers.set(b, [ip]);
      for (const id of [idA, idB]) {
        const res = await query(id);
        expect(res.status, res.text).toBe(429);
        expect(res.body.detail).toMatch(/could not be reached too often/);
      }
    }
    expect(other.accepted).toBe(seen);
    expect(pg.accepted).toBe(reached);
    expect(asked(a) + asked(b)).toBe(lookups);
    expect((await query(healthy)).status).toBe(200);

    // Once the window has passed, each is tried again.
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + 61_000 });
    for (const id of [idA, idB]) {
      const res = await query(id);
      expect(res.status, res.text).toBe(200);
    }
    expect(pg.accepted).toBe(reached + 2);
    vi.useRealTimers();
  }, 60_000);

  it("holds monitoring runs to it too: a run reports the refusal for every check without connecting", async () => {
    const c = "c.rt-scan.test";
    dns.answers.set(c, ["127.0.0.1"]);
    const user = await h.newUser();
    const saved = await add(h, user.token, { host: c, port: pg.port });
    expect(saved.status, saved.text).toBe(201);
    const table = await monitorTable(h, user.token, { connection_id: saved.body.db_connection.id, table: "items", checks: [{ kind: "volume" }, { kind: "schema_drift" }] });
    const run = () => h.call("POST", `/api/tables/${table.id}/run`, { token: user.token });
    expect((await run()).body.outcomes.map((o: any) => o.status)).toEqual(["pass", "pass"]);
    for (let i = 0; i < 2; i++) await h.call("POST", `/databases/${saved.body.db_connection.id}/test`, { token: user.token });

    dns.answers.set(c, ["127.0.0.2"]);
    pg.cut();
    const accepted = other.accepted;
    for (let i = 0; i < 3; i++) {
      const res = await run();
      expect(res.status, res.text).toBe(200);
      expect(res.body.outcomes).toEqual([
        expect.objectContaining({ status: "error", message: expect.stringMatching(/^This database could not be reached too often this minute/) }),
        expect.objectContaining({ status: "error", message: expect.stringMatching(/^This database could not be reached too often this minute/) }),
      ]);
    }
    expect(other.accepted).toBe(accepted + 1); // the run that found it unreachable, answered as refused
  }, 60_000);
});
