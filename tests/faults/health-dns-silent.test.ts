// A result's health names alerts found through another of the user's connections to the same
// database, which means looking up where that connection's host points. When its DNS never
// answers, every result waits its bound (HEALTH_READ_WAIT_MS) and goes out without those alerts;
// each of them also logged a warning, so one user's stream of statements made as many log lines
// as the lookup lasted statements. Now the lookup that takes too long is logged once.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { startDnsServer, type DnsServer } from "../support/dns-server.js";
import { createHarness, type Harness } from "../support/harness.js";
import { monitorTable } from "../support/monitoring.js";
import { postgresTarget, type TargetDb } from "../support/targets.js";

const SLOW = "took too long to resolve for a result's health";

let dns: DnsServer;
let customer: TargetDb;
let h: Harness;

beforeAll(async () => {
  dns = await startDnsServer();
  customer = await postgresTarget();
  h = await createHarness({ store: "postgresql", env: { TARGET_DNS_SERVERS: dns.address } });
});
afterAll(async () => {
  await h?.close();
  await customer?.drop();
  await dns?.close();
});

describe("a result's health while another connection's host does not resolve", () => {
  it("answers every statement without that connection's alerts, and logs the slow lookup once", async () => {
    const name = "monitoring.health-silent.test";
    dns.answers.set(name, ["127.0.0.1"]);
    const user = await h.newUser();
    const add = async (body: Record<string, unknown>) => {
      const res = await h.call("POST", "/databases/add_db_connection", { token: user.token, json: { ...customer.body, ...body } });
      expect(res.status, res.text).toBe(201);
      return res.body.db_connection.id as number;
    };
    const monitoring = await add({ host: name });
    const table = await monitorTable(h, user.token, {
      connection_id: monitoring,
      table: "items",
      checks: [{ kind: "custom_sql", name: "rows", sql: "SELECT count(*) FROM items", max: 0 }],
      alert: { open_after: 1 },
    });
    expect((await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token })).status).toBe(200);
    const reading = await add({});

    dns.silent.add(name);
    const asked = dns.asked.length;
    // At once, so that all of them wait on the same lookup (a DNS server that answered before
    // gets a shorter wait from c-ares: about 2 s here, whatever the bound).
    const results = await Promise.all(
      Array.from({ length: 4 }, () => h.call("POST", "/query", { token: user.token, json: { sql: "SELECT count(*) AS n FROM items", connection_id: reading } })),
    );
    for (const res of results) {
      expect(res.status, res.text).toBe(200);
      expect(res.body.data.rows).toEqual([[2]]);
      expect(res.body.health).toEqual([]);
    }
    expect(dns.asked.length).toBeGreaterThan(asked); // the lookup was asked, and is still unanswered
    expect(h.logs.filter((line) => line.includes(SLOW))).toHaveLength(1);
  });
});
