// Threat: statements sent to a customer database leave no trace, so nobody can tell who read
// what, what the guard refused, or what an agent ran. Every statement Pulse sends for a user
// (direct query, /ask tool call, monitoring check, introspection) is recorded in the metadata
// store; GET /api/audit shows a user their own records only; records age out; and when the
// store cannot take records, statements are refused rather than run unrecorded.

import { sql } from "drizzle-orm";
import { PgDialect } from "drizzle-orm/pg-core";
import pg from "pg";
import v8 from "node:v8";
import vm from "node:vm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { MAX_BUDGET_REFUSALS_PER_USER_SECOND } from "../../src/audit/trail.js";
import { startService } from "../../src/serve.js";
import { createScheduler } from "../../src/monitoring/scheduler.js";
import { appendAuditRecords, auditGroupsRead, FIRST_READ_GROUPS, listAuditRecords, pruneAuditRecords, type AuditFilter, type NewAuditRecord } from "../../src/store/audit.js";
import { openStore } from "../../src/store/client.js";
import { isStoreUnavailable } from "../../src/store/unavailable.js";
import { startQueuedFakeOpenAI, type FakeOpenAI, type FakeReply } from "../support/fake-openai.js";
import { createHarness, type Harness } from "../support/harness.js";
import { monitorTable } from "../support/monitoring.js";
import { createPgDatabase, PG, pgAdmin, pgUrl, uniqueName } from "../support/services.js";
import { startTcpRelay } from "../support/tcp-relay.js";
import { mariaTarget, postgresTarget, sqliteTarget, type TargetDb } from "../support/targets.js";

let h: Harness;
let fake: FakeOpenAI;
const replies: FakeReply[] = [];
const targets: TargetDb[] = [];

beforeAll(async () => {
  fake = await startQueuedFakeOpenAI(replies);
  h = await createHarness({
    env: { OPENAI_BASE_URL: fake.baseUrl, OPENAI_MODEL: "fake-model", OPENAI_TIMEOUT_MS: "1500", AUDIT_RETENTION_DAYS: "30" },
  });
});
afterAll(async () => {
  await h?.close();
  await fake?.close();
  for (const target of targets) await target.drop();
});

type User = Awaited<ReturnType<Harness["newUser"]>>;

async function connectionOf(user: User, dialect: "postgresql" | "mysql" | "sqlite"): Promise<number> {
  const target = dialect === "postgresql" ? await postgresTarget() : dialect === "mysql" ? await mariaTarget() : await sqliteTarget(h.sqliteRoot);
  targets.push(target);
  const res = await h.call("POST", "/databases/add_db_connection", { token: user.token, json: target.body });
  if (res.status !== 200 && res.status !== 201) throw new Error(`adding a connection failed: ${res.status} ${res.text}`);
  return res.body.db_connection.id as number;
}

/** A record as the trail writes it: a direct query that ran, on connection 1, now, unless told. */
function recordOf(fields: Pick<NewAuditRecord, "ownerId" | "sql"> & Partial<NewAuditRecord>): NewAuditRecord {
  const ran = { at: new Date(), connectionId: 1, source: "query", apiKeyId: null, sqlLength: fields.sql.length, sqlSha256: null, rowCount: 1, durationMs: 1 } as const;
  return { ...ran, outcome: "ok", errorCode: null, rule: null, ...fields };
}

/** The caller's audit trail once what was buffered has been written. */
async function audit(user: User, query = "") {
  await h.deps.audit!.flush();
  const res = await h.call("GET", `/api/audit${query}`, { token: user.token });
  expect(res.status, res.text).toBe(200);
  return res.body as { records: Record<string, any>[]; next_cursor: number | null };
}

v8.setFlagsFromString("--expose-gc");
const collectGarbage = vm.runInNewContext("gc") as () => void;

describe("what is recorded", () => {
  for (const dialect of ["postgresql", "mysql", "sqlite"] as const) {
    it(`records a direct query and a refused write with its rule (${dialect})`, async () => {
      const user = await h.newUser();
      const id = await connectionOf(user, dialect);
      const table = dialect === "sqlite" ? "Artist" : "items";
      const read = await h.call("POST", `/databases/${id}/query`, { token: user.token, json: { sql: `SELECT * FROM ${table} LIMIT 2` } });
      expect(read.status).toBe(200);
      const write = await h.call("POST", "/query", { token: user.token, json: { sql: `DELETE FROM ${table}`, connection_id: id } });
      expect(write.status).toBe(400);

      const { records } = await audit(user, "?source=query");
      expect(records).toEqual([
        expect.objectContaining({
          user_id: user.id,
          connection_id: id,
          source: "query",
          sql: `DELETE FROM ${table}`,
          outcome: "refused",
          error_code: "sql_refused",
          rule: write.body.rule,
          row_count: null,
        }),
        expect.objectContaining({ source: "query", sql: `SELECT * FROM ${table} LIMIT 2`, outcome: "ok", row_count: 2, rule: null, error_code: null }),
      ]);
      expect(write.body.rule).toEqual(expect.any(String));
      expect(records[1]!.duration_ms).toBeGreaterThanOrEqual(0);
      expect(Date.parse(records[1]!.at)).toBeGreaterThan(Date.now() - 60_000);
    });
  }

  it("records an introspection once per catalog read, from connect_db and a schema refresh", async () => {
    const user = await h.newUser();
    const id = await connectionOf(user, "postgresql");
    expect((await h.call("POST", `/databases/connect_db/${id}`, { token: user.token })).status).toBe(200);
    // Served from the connector's cache: nothing is sent, nothing recorded.
    expect((await h.call("GET", `/databases/${id}/schema`, { token: user.token })).status).toBe(200);
    expect((await h.call("POST", `/databases/${id}/schema/refresh`, { token: user.token })).status).toBe(200);
    const { records } = await audit(user, "?source=introspection");
    expect(records).toHaveLength(2);
    for (const record of records) expect(record).toMatchObject({ connection_id: id, source: "introspection", outcome: "ok", row_count: 1 });
  });

  it("names the API key that sent a statement, filters by it, and keeps it once the key is deleted", async () => {
    const user = await h.newConnectedUser();
    const [connection] = (await h.call("GET", "/databases", { token: user.token })).body;
    const created = await h.call("POST", "/api/keys", { token: user.token, json: { name: "script", scopes: ["query", "ask", "monitoring:write"] } });
    expect(created.status, created.text).toBe(201);
    const key = created.body as { id: number; key: string };
    const run = (token: string, sql: string) => h.call("POST", `/databases/${connection.id}/query`, { token, json: { sql } });
    expect((await run(key.key, "SELECT 1 AS by_key")).status).toBe(200);
    expect((await run(user.token, "SELECT 2 AS by_login")).status).toBe(200);
    expect((await h.call("POST", `/databases/connect_db/${connection.id}`, { token: key.key })).status).toBe(200);
    replies.push({ toolCalls: [{ name: "run_query", args: { sql: "SELECT 3 AS asked_by_key" } }] });
    replies.push({ content: "3." });
    expect((await h.call("POST", "/ask", { token: key.key, json: { question: "Three?" } })).status).toBe(200);
    // A check's dry run reads what its SQL asks: the key that saved it is named too.
    const check = { kind: "custom_sql", name: "n", sql: "SELECT 4 AS checked_by_key", max: 10 };
    const monitored = await h.call("POST", "/api/tables", { token: key.key, json: { connection_id: connection.id, table: "Artist", checks: [check] } });
    expect(monitored.status, monitored.text).toBe(201);
    // So is one that asks for a run now.
    expect((await h.call("POST", `/api/tables/${monitored.body.id}/run`, { token: key.key })).status).toBe(200);
    expect((await h.call("DELETE", `/api/keys/${key.id}`, { token: user.token })).status).toBe(204);

    const { records } = await audit(user, "?source=query");
    expect(records.map((r) => [r.sql, r.api_key_id])).toEqual([
      ["SELECT 2 AS by_login", null],
      ["SELECT 1 AS by_key", key.id],
    ]);
    const byKey = await audit(user, `?api_key_id=${key.id}`);
    expect(byKey.records.map((r) => [r.source, r.sql])).toEqual([
      ["monitor", "SELECT 4 AS checked_by_key"],
      ["monitor", "SELECT 4 AS checked_by_key"],
      ["ask", "SELECT 3 AS asked_by_key"],
      ["query", "SELECT 1 AS by_key"],
    ]);
    // Another user naming this key finds none of it.
    const stranger = await h.newUser();
    expect((await audit(stranger, `?api_key_id=${key.id}`)).records).toEqual([]);
  });

  it("records the statements of an /ask tool call, refused ones with their rule", async () => {
    const user = await h.newConnectedUser();
    replies.push({ toolCalls: [{ name: "run_query", args: { sql: "DROP TABLE Album" } }] });
    replies.push({ toolCalls: [{ name: "run_query", args: { sql: "SELECT COUNT(*) AS n FROM Album" } }] });
    replies.push({ content: "347 albums." });
    const res = await h.call("POST", "/ask", { token: user.token, json: { question: "How many albums?", session_id: user.sessionId, user_id: user.id } });
    expect(res.status, res.text).toBe(200);
    const { records } = await audit(user, "?source=ask");
    expect(records.map((r) => [r.sql, r.outcome, r.row_count])).toEqual([
      ["SELECT COUNT(*) AS n FROM Album", "ok", 1],
      ["DROP TABLE Album", "refused", null],
    ]);
    expect(records[1]!.rule).toEqual(expect.any(String));
  });

  it("records a monitoring check run's statements as source monitor", async () => {
    const user = await h.newUser();
    const id = await connectionOf(user, "postgresql");
    const table = await monitorTable(h, user.token, {
      connection_id: id,
      table: "items",
      checks: [{ kind: "custom_sql", name: "ids", sql: "SELECT count(*) FROM items", max: 10 }],
    });
    expect((await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token })).status).toBe(200);
    const { records } = await audit(user, "?source=monitor");
    // Twice: the dry run that proved the check before it was saved, then the run.
    const record = expect.objectContaining({ connection_id: id, source: "monitor", sql: "SELECT count(*) FROM items", outcome: "ok", row_count: 1 });
    expect(records).toEqual([record, record]);
  });

  it("keeps the first 4,096 characters of a long statement with its length and hash", async () => {
    const user = await h.newUser();
    const id = await connectionOf(user, "sqlite");
    const sql = `SELECT 1 ${" ".repeat(20_000)}-- end`;
    expect((await h.call("POST", `/databases/${id}/query`, { token: user.token, json: { sql } })).status).toBe(200);
    const [record] = (await audit(user)).records;
    expect(record).toMatchObject({ sql_length: sql.length, sql_truncated: true, sql_sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(record!.sql).toBe(sql.slice(0, 4096));
  });

  it("records a SQLite statement run rewritten (legacy double-quoted strings) once, as asked", async () => {
    const user = await h.newUser();
    const id = await connectionOf(user, "sqlite");
    const sql = `SELECT count(*) FROM Artist WHERE Name = "no such artist"`;
    expect((await h.call("POST", `/databases/${id}/query`, { token: user.token, json: { sql } })).status).toBe(200);
    expect((await audit(user, "?source=query")).records).toEqual([expect.objectContaining({ sql, outcome: "ok", row_count: 1 })]);
  });

  it("records a statement carrying NUL characters (a model's: the API refuses them) without blocking the trail", async () => {
    const user = await h.newConnectedUser();
    const refused = await h.call("POST", "/query", { token: user.token, json: { sql: "SELECT 1\u0000; DROP TABLE Artist" } });
    expect(refused.status).toBe(422);
    replies.push({ toolCalls: [{ name: "run_query", args: { sql: "SELECT 1\u0000; DROP TABLE Artist" } }] });
    replies.push({ content: "Done." });
    expect((await h.call("POST", "/ask", { token: user.token, json: { question: "Anything?", session_id: user.sessionId, user_id: user.id } })).status).toBe(200);
    expect((await h.call("POST", "/query", { token: user.token, json: { sql: "SELECT 2" } })).status).toBe(200);
    const records = (await audit(user)).records.filter((r) => r.source !== "introspection");
    expect(records.map((r) => r.sql)).toEqual(["SELECT 2", "SELECT 1\uFFFD; DROP TABLE Artist"]);
  });

  it("records tabs, line breaks, backslashes and a literal \\N in a statement verbatim, and NULLs as null", async () => {
    const user = await h.newUser();
    const id = await connectionOf(user, "sqlite");
    const sql = "SELECT 'a\tb' AS \"x\\N\",\r\n  '\\N' AS y -- C:\\temp\\new\n";
    expect((await h.call("POST", `/databases/${id}/query`, { token: user.token, json: { sql } })).status).toBe(200);
    expect((await audit(user)).records).toEqual([expect.objectContaining({ sql, sql_length: sql.length, sql_sha256: null, error_code: null, rule: null })]);
  });
});

describe("record times", () => {
  it("keeps each record's time to the millisecond, within and across seconds", async () => {
    const user = await h.newUser();
    const times = ["2026-03-01T23:59:59.999Z", "2026-03-02T00:00:00.000Z", "2026-03-02T00:00:00.007Z", "2026-03-02T00:00:00.070Z", "2026-03-02T00:00:01.500Z"];
    await appendAuditRecords(h.deps.store, times.map((at) => recordOf({ at: new Date(at), ownerId: user.id, sql: at })));
    const { records } = await audit(user);
    expect(records.map((r) => [r.sql, r.at])).toEqual(times.map((t) => [t, t]).reverse());
  });
});

describe("GET /api/audit", () => {
  it("shows a user none of another user's records", async () => {
    const alice = await h.newUser();
    const id = await connectionOf(alice, "sqlite");
    expect((await h.call("POST", `/databases/${id}/query`, { token: alice.token, json: { sql: "SELECT 1" } })).status).toBe(200);
    const bob = await h.newUser();
    expect((await audit(alice)).records).toHaveLength(1);
    expect(await audit(bob)).toEqual({ records: [], next_cursor: null });
    expect((await audit(bob, `?connection_id=${id}`)).records).toEqual([]);
  });

  it("filters by connection, outcome and time, and pages with a cursor", async () => {
    const user = await h.newUser();
    const first = await connectionOf(user, "sqlite");
    const second = await connectionOf(user, "sqlite");
    const run = (id: number, sql: string) => h.call("POST", `/databases/${id}/query`, { token: user.token, json: { sql } });
    for (let i = 0; i < 5; i++) await run(first, `SELECT ${i}`);
    await run(second, "SELECT 'other'");
    await run(second, "UPDATE Artist SET Name = 'x'");

    expect((await audit(user, `?connection_id=${second}`)).records.map((r) => r.sql)).toEqual(["UPDATE Artist SET Name = 'x'", "SELECT 'other'"]);
    expect((await audit(user, "?outcome=refused")).records.map((r) => r.sql)).toEqual(["UPDATE Artist SET Name = 'x'"]);
    expect((await audit(user, "?from=2000-01-01T00:00:00Z&to=2000-12-31T00:00:00Z")).records).toEqual([]);
    const recent = new Date(Date.now() - 60_000).toISOString();
    expect((await audit(user, `?from=${recent}`)).records).toHaveLength(7);
    // Bounds finer than the millisecond the records keep: from takes in nothing before it, to
    // everything at or before it (a client's microseconds, as Python's isoformat writes them).
    const newest = (await audit(user)).records[0]!.at as string;
    const finer = (at: string, digits: string) => at.replace(/Z$/, `${digits}Z`);
    expect((await audit(user, `?from=${finer(newest, "500")}`)).records).toEqual([]);
    expect((await audit(user, `?from=${finer(newest, "000")}`)).records.map((r) => r.at)).toContain(newest);
    expect((await audit(user, `?to=${finer(newest, "999")}`)).records.map((r) => r.at)).toContain(newest);

    const pages: string[][] = [];
    let cursor: number | null = null;
    do {
      const page: Awaited<ReturnType<typeof audit>> = await audit(user, `?connection_id=${first}&limit=2${cursor ? `&cursor=${cursor}` : ""}`);
      pages.push(page.records.map((r) => r.sql));
      cursor = page.next_cursor;
    } while (cursor !== null);
    expect(pages.flat()).toEqual(["SELECT 4", "SELECT 3", "SELECT 2", "SELECT 1", "SELECT 0"]);
    expect(pages[0]).toHaveLength(2);
  });

  it("lists by the statements' time, a record written late in its place, and pages through records of the same millisecond", async () => {
    const user = await h.newUser();
    const at = new Date(Date.now() - 3_600_000);
    // Written in this order: the late one (buffered through a store outage) last.
    const same = Array.from({ length: 5 }, (_, i) => recordOf({ at, ownerId: user.id, sql: `SELECT 'same ${i}'` }));
    await appendAuditRecords(h.deps.store, [recordOf({ ownerId: user.id, sql: "SELECT 'now'" }), ...same]);
    await appendAuditRecords(h.deps.store, [recordOf({ at: new Date(at.getTime() - 1), ownerId: user.id, sql: "SELECT 'late'" })]);
    const pages: string[][] = [];
    let cursor: number | null = null;
    do {
      const page: Awaited<ReturnType<typeof audit>> = await audit(user, `?limit=2${cursor ? `&cursor=${cursor}` : ""}`);
      pages.push(page.records.map((r) => r.sql));
      cursor = page.next_cursor;
    } while (cursor !== null);
    expect(pages.flat()).toEqual(["SELECT 'now'", "SELECT 'same 4'", "SELECT 'same 3'", "SELECT 'same 2'", "SELECT 'same 1'", "SELECT 'same 0'", "SELECT 'late'"]);
  });

  it("answers 422 naming the field for bad filters, and 401 without a token", async () => {
    const user = await h.newUser();
    for (const [query, field] of [
      ["?source=shell", "source"],
      ["?outcome=maybe", "outcome"],
      ["?from=yesterday", "from"],
      ["?from=2030-01-02T00:00:00Z&to=2030-01-01T00:00:00Z", "to"],
      ["?limit=5000", "limit"],
      ["?cursor=-1", "cursor"],
    ]) {
      const res = await h.call("GET", `/api/audit${query}`, { token: user.token });
      expect(res.status, query).toBe(422);
      expect(JSON.stringify(res.body), query).toContain(field);
    }
    expect((await h.call("GET", "/api/audit")).status).toBe(401);
  });

  it("is documented in the OpenAPI document", async () => {
    const doc = (await h.call("GET", "/openapi.json")).body;
    const get = doc.paths["/api/audit"].get;
    // Not on the public list, so the document's default (bearer) applies.
    expect(get.security).toBeUndefined();
    expect(doc.security).toEqual([{ bearer: [] }]);
    expect(get.parameters.map((p: { name: string }) => p.name).sort()).toEqual(["api_key_id", "connection_id", "cursor", "from", "limit", "outcome", "source", "to"]);
  });
});

describe("the statements behind GET /api/audit", () => {
  it("page through every filter's records in the view's order, across many groups, records written late and ties in a millisecond", async () => {
    const [alice, bob] = [await h.newUser(), await h.newUser()];
    const start = Date.now() - 3_600_000;
    // Three batches, as three flushes write them: each second's records in groups by
    // connection, source and key, some records of the first seconds written late, ties.
    const batch = (from: number, seconds: number, late = false) =>
      Array.from({ length: seconds * 12 }, (_, i) =>
        recordOf({
          at: new Date(start + (from + Math.floor(i / 12)) * 1000 + (late ? 999 : (i % 12) * 40 - (i % 5 === 0 ? (i % 12) * 40 : 0))),
          ownerId: i % 7 === 3 ? bob.id : alice.id,
          connectionId: 1 + (i % 3),
          source: i % 4 === 1 ? "ask" : "query",
          sql: `SELECT ${from}, ${i}`,
          outcome: i % 37 === 0 ? "refused" : "ok",
          apiKeyId: i % 11 === 0 ? 5 : null,
        }),
      );
    await appendAuditRecords(h.deps.store, batch(0, 150));
    await appendAuditRecords(h.deps.store, batch(150, 150));
    await appendAuditRecords(h.deps.store, batch(2, 20, true));
    const [groups] = await pgAdmin<{ n: number }>("SELECT count(*)::int AS n FROM audit_groups WHERE owner_id = $1", h.pgDatabase!.name, [alice.id]);
    expect(groups!.n).toBeGreaterThan(1000);

    const filters: Omit<AuditFilter, "ownerId" | "limit">[] = [
      {},
      { connectionId: 2 },
      { outcome: "refused" },
      { outcome: "ok", source: "ask" },
      { apiKeyId: 5 },
      { from: new Date(start + 100_000), to: new Date(start + 130_500) },
      { to: new Date(start + 5_000), connectionId: 1 },
    ];
    for (const filter of filters) {
      const where = ["owner_id = $1"];
      const params: unknown[] = [alice.id];
      const add = (clause: string, value: unknown) => where.push(clause.replace("?", `$${params.push(value)}`));
      if (filter.connectionId !== undefined) add("connection_id = ?", filter.connectionId);
      if (filter.outcome !== undefined) add("outcome = ?", filter.outcome);
      if (filter.source !== undefined) add("source = ?", filter.source);
      if (filter.apiKeyId !== undefined) add("api_key_id = ?", filter.apiKeyId);
      if (filter.from !== undefined) add("at >= ?", filter.from.toISOString());
      if (filter.to !== undefined) add("at <= ?", filter.to.toISOString());
      const expected = await pgAdmin<{ id: string }>(`SELECT id FROM audit_records WHERE ${where.join(" AND ")} ORDER BY at DESC, id DESC`, h.pgDatabase!.name, params);
      expect(expected.length, JSON.stringify(filter)).toBeGreaterThan(10);
      for (const limit of [9, 100]) {
        const listed: number[] = [];
        let before: number | undefined;
        for (;;) {
          const page = await listAuditRecords(h.deps.store.db, { ownerId: alice.id, limit, before, ...filter });
          listed.push(...page.map((r) => r.id));
          if (page.length < limit) break;
          before = page.at(-1)!.id;
        }
        expect(listed, `${limit} a page, ${JSON.stringify(filter)}`).toEqual(expected.map((r) => Number(r.id)));
      }
    }
  });

  it("read on past a group whose records begin before the next group's: the page is whole only above the last group read", async () => {
    const user = await h.newUser();
    const second = Math.floor(Date.now() / 1000) * 1000 - 3_600_000;
    const refused = (at: number, connectionId = 1) => recordOf({ at: new Date(at), ownerId: user.id, connectionId, sql: `DELETE ${at}`, outcome: "refused" });
    await appendAuditRecords(h.deps.store, [
      // Groups of a refused record each, a second apart, the oldest a second after `second`.
      ...Array.from({ length: FIRST_READ_GROUPS - 1 }, (_, i) => refused(second + (i + 1) * 1000)),
      // The last group of the first read: records at .000 and .900.
      refused(second),
      refused(second + 900),
      // The next, on another connection: its record (.500) is newer than the last one's first.
      refused(second + 500, 2),
    ]);
    const page = await listAuditRecords(h.deps.store.db, { ownerId: user.id, outcome: "refused", limit: FIRST_READ_GROUPS + 1 });
    const before = Array.from({ length: FIRST_READ_GROUPS - 1 }, (_, i) => (FIRST_READ_GROUPS - 1 - i) * 1000);
    expect(page.map((r) => r.at.getTime() - second)).toEqual([...before, 900, 500]);
  });

  it("reach an owner's records by index in page order: their pages, a time window however far back, a connection's (even another user's), the rare outcomes and an API key's", async () => {
    const [alice, bob] = [await h.newUser(), await h.newUser()];
    const records = [alice, bob].flatMap((user, u) =>
      Array.from({ length: 3000 }, (_, i) =>
        recordOf({
          at: new Date(Date.now() - i * 1000),
          ownerId: user.id,
          connectionId: 900_000 + u * 10 + (i % 3),
          sql: `SELECT ${i}`,
          outcome: i % 100 === 0 ? "refused" : "ok",
          apiKeyId: i % 50 === 0 ? 7 : null,
        }),
      ),
    );
    await appendAuditRecords(h.deps.store, records);
    const client = new pg.Client({ connectionString: pgUrl(h.pgDatabase!.name) });
    await client.connect();
    try {
      await client.query("ANALYZE audit_groups");
      // Whether an index can answer, not whether the planner prefers it on a table this small.
      await client.query("SET enable_seqscan = off");
      const plan = async (filter: Omit<AuditFilter, "limit">, cursor?: Parameters<typeof auditGroupsRead>[1]["cursor"]) => {
        const { sql, params } = new PgDialect().sqlToQuery(auditGroupsRead({ limit: 50, ...filter }, { groups: FIRST_READ_GROUPS, cursor }));
        const { rows } = await client.query(`EXPLAIN (FORMAT JSON) ${sql}`, params);
        return JSON.stringify(rows[0]["QUERY PLAN"]);
      };
      // Groups in page order (ties in the same millisecond sorted as read, "Incremental Sort"):
      // no sort of every group found, so a read reads the groups it asks for. (Only the groups
      // read, and their records, are sorted.)
      const inOrder = (index: string, p: string) => {
        expect(p).toContain(`"Index Name":"${index}"`);
        expect(p).not.toMatch(/"Node Type":"Sort"[^{}]*"Sort Key":\[[^\]]*audit_groups\.last_at/);
        expect(p).toContain('"Scan Direction":"Backward"');
      };
      inOrder("audit_groups_owner_at_idx", await plan({ ownerId: alice.id }));
      // A window far back is a range of the index, not a filter applied to every newer group.
      const longAgo = await plan({ ownerId: alice.id, from: new Date(Date.now() - 2_900_000), to: new Date(Date.now() - 2_800_000) });
      inOrder("audit_groups_owner_at_idx", longAgo);
      expect(longAgo).toMatch(/"Index Cond":"\(\(owner_id = \d+\) AND \(last_at >= [^"]*\) AND \(last_at < [^"]*\)\)"/);
      const nextPage = await plan({ ownerId: alice.id }, { at: new Date(Date.now() - 2_000_000).toISOString(), id: 5 });
      inOrder("audit_groups_owner_at_idx", nextPage);
      expect(nextPage).toMatch(/"Index Cond":"\(\(owner_id = \d+\) AND \(last_at < [^"]*\)\)"/);
      const othersConnection = await plan({ ownerId: alice.id, connectionId: 900_010 });
      inOrder("audit_groups_connection_idx", othersConnection);
      expect(othersConnection).toMatch(/"Index Cond":"\(\(connection_id = \d+\) AND \(owner_id = \d+\)\)"/);
      expect(await plan({ ownerId: alice.id, outcome: "refused" })).toContain('"Index Name":"audit_groups_outcome_idx"');
      expect(await plan({ ownerId: alice.id, apiKeyId: 7 })).toContain('"Index Name":"audit_groups_api_key_idx"');
    } finally {
      await client.end();
    }
  });
});

describe("budget refusals", () => {
  let tight: Harness;
  beforeAll(async () => {
    tight = await createHarness({ env: { USER_QUERIES_PER_MINUTE: "2" } });
  });
  afterAll(async () => tight?.close());

  it("are recorded once a second per user, so a flood of 429s cannot fill the trail", async () => {
    const user = await tight.newUser();
    const target = await sqliteTarget(tight.sqliteRoot);
    const id = (await tight.call("POST", "/databases/add_db_connection", { token: user.token, json: target.body })).body.db_connection.id as number;
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) => tight.call("POST", "/query", { token: user.token, json: { connection_id: id, sql: `SELECT ${i}` } })),
    );
    const refused = answers.filter((a) => a.status === 429).length;
    expect(refused).toBeGreaterThanOrEqual(38);
    await tight.deps.audit!.flush();
    const res = await tight.call("GET", "/api/audit?outcome=budget_exceeded", { token: user.token });
    const records = res.body.records as { at: string }[];
    const seconds = new Set(records.map((r) => r.at.slice(0, 19)));
    expect(records.length).toBeGreaterThanOrEqual(1);
    expect(records.length).toBe(seconds.size);
    expect(records.length).toBeLessThan(refused);
    // What ran is recorded whole.
    expect((await tight.call("GET", "/api/audit?outcome=ok&source=query", { token: user.token })).body.records).toHaveLength(40 - refused);
  });

  it("are recorded once a second per credential: a key flooding does not hide its user's login's", async () => {
    const user = await tight.newUser();
    const target = await sqliteTarget(tight.sqliteRoot);
    const id = (await tight.call("POST", "/databases/add_db_connection", { token: user.token, json: target.body })).body.db_connection.id as number;
    const key = (await tight.call("POST", "/api/keys", { token: user.token, json: { name: "flood", scopes: ["query"] } })).body as { id: number; key: string };
    const answers = await Promise.all(
      [user.token, key.key].flatMap((token) => Array.from({ length: 20 }, (_, i) => tight.call("POST", "/query", { token, json: { connection_id: id, sql: `SELECT ${i}` } }))),
    );
    expect(answers.filter((a) => a.status === 429).length).toBeGreaterThanOrEqual(38);
    await tight.deps.audit!.flush();
    const records = (await tight.call("GET", "/api/audit?outcome=budget_exceeded", { token: user.token })).body.records as { at: string; api_key_id: number | null }[];
    expect(new Set(records.map((r) => r.api_key_id))).toEqual(new Set([null, key.id]));
    const perSecond = records.map((r) => `${r.at.slice(0, 19)} ${r.api_key_id}`);
    expect(perSecond.length).toBe(new Set(perSecond).size);
  });

  it(`are recorded at most ${MAX_BUDGET_REFUSALS_PER_USER_SECOND} a second per user, however many keys send them`, async () => {
    const user = await tight.newUser();
    const target = await sqliteTarget(tight.sqliteRoot);
    const id = (await tight.call("POST", "/databases/add_db_connection", { token: user.token, json: target.body })).body.db_connection.id as number;
    const keys: string[] = [];
    for (let i = 0; i < 2 * MAX_BUDGET_REFUSALS_PER_USER_SECOND; i++) {
      keys.push((await tight.call("POST", "/api/keys", { token: user.token, json: { name: `flood ${i}`, scopes: ["query"] } })).body.key as string);
    }
    const answers = await Promise.all(keys.flatMap((token) => Array.from({ length: 4 }, (_, i) => tight.call("POST", "/query", { token, json: { connection_id: id, sql: `SELECT ${i}` } }))));
    expect(answers.filter((a) => a.status === 429).length).toBeGreaterThanOrEqual(answers.length - 2);
    await tight.deps.audit!.flush();
    const records = (await tight.call("GET", "/api/audit?outcome=budget_exceeded", { token: user.token })).body.records as { at: string }[];
    const perSecond = new Map<string, number>();
    for (const r of records) perSecond.set(r.at.slice(0, 19), (perSecond.get(r.at.slice(0, 19)) ?? 0) + 1);
    expect(records.length).toBeGreaterThan(0);
    expect(Math.max(...perSecond.values())).toBeLessThanOrEqual(MAX_BUDGET_REFUSALS_PER_USER_SECOND);
  });

  it("come for catalog reads too, and refreshes asked during a read share the one after it", async () => {
    const user = await tight.newUser();
    const target = await sqliteTarget(tight.sqliteRoot);
    const id = (await tight.call("POST", "/databases/add_db_connection", { token: user.token, json: target.body })).body.db_connection.id as number;
    // Ten at once: a read, and one after it for those asked meanwhile: the budget's two.
    const together = await Promise.all(Array.from({ length: 10 }, () => tight.call("POST", `/databases/${id}/schema/refresh`, { token: user.token })));
    expect(together.map((a) => a.status)).toEqual(Array(10).fill(200));
    await tight.deps.audit!.flush();
    const reads = (await tight.call("GET", "/api/audit?source=introspection", { token: user.token })).body.records;
    expect(reads.length).toBeGreaterThanOrEqual(1);
    expect(reads.length).toBeLessThanOrEqual(2);
    // Once the budget (2 a minute) is spent, a refresh is refused, and the schema read before
    // is kept: GET answers from it without a read.
    if (reads.length === 1) expect((await tight.call("POST", `/databases/${id}/schema/refresh`, { token: user.token })).status).toBe(200);
    const refused = await tight.call("POST", `/databases/${id}/schema/refresh`, { token: user.token });
    expect(refused.status).toBe(429);
    expect(refused.body.code).toBe("budget_exceeded");
    const kept = await tight.call("GET", `/databases/${id}/schema`, { token: user.token });
    expect(kept.status).toBe(200);
    expect(kept.body.tables.length).toBeGreaterThan(0);
  });
});

describe("retention", () => {
  it("prunes records older than AUDIT_RETENTION_DAYS when the scheduler keeps house", async () => {
    const user = await h.newUser();
    const day = 86_400_000;
    const record = (ageDays: number, sql: string) => recordOf({ at: new Date(Date.now() - ageDays * day), ownerId: user.id, sql });
    await appendAuditRecords(h.deps.store, [record(31, "SELECT 'old'"), record(29, "SELECT 'kept'")]);
    expect((await audit(user)).records).toHaveLength(2);
    await h.scheduler.tick();
    expect((await audit(user)).records.map((r) => r.sql)).toEqual(["SELECT 'kept'"]);
  });

  it("prunes again at the next tick, not in an hour, while a backlog is left", async () => {
    const user = await h.newUser();
    const day = 86_400_000;
    const old = Array.from({ length: 9 }, (_, k) => recordOf({ at: new Date(Date.now() - (31 + k) * day), ownerId: user.id, sql: `SELECT 'old ${k}'` }));
    await appendAuditRecords(h.deps.store, [...old, recordOf({ ownerId: user.id, sql: "SELECT 'kept'" })]);
    // Two batches of two rows a prune: a backlog after the first.
    const scheduler = createScheduler(h.deps, { instanceId: uniqueName("pruner"), prune: { batchRows: 2, maxBatches: 2 } });
    try {
      await scheduler.tick();
      expect((await audit(user)).records.length).toBeGreaterThanOrEqual(6);
      for (let i = 0; i < 6; i++) await scheduler.tick();
      expect((await audit(user)).records.map((r) => r.sql)).toEqual(["SELECT 'kept'"]);
    } finally {
      await scheduler.stop();
    }
  });

  it("prunes in bounded batches across every owner, and keeps what is within retention", async () => {
    const day = 86_400_000;
    const cutoff = new Date(Date.now() - 30 * day);
    const users = [await h.newUser(), await h.newUser(), await h.newUser()];
    for (const [i, user] of users.entries()) {
      const old = Array.from({ length: 3 + i }, (_, k) => recordOf({ at: new Date(cutoff.getTime() - (k + 1) * day), ownerId: user.id, sql: `SELECT 'old ${k}'` }));
      await appendAuditRecords(h.deps.store, [...old, recordOf({ at: new Date(cutoff.getTime() + day), ownerId: user.id, sql: "SELECT 'kept'" })]);
    }
    const batches: number[] = [];
    for (let n = await pruneAuditRecords(h.deps.store.db, cutoff, 4); n > 0; n = await pruneAuditRecords(h.deps.store.db, cutoff, 4)) batches.push(n);
    // 12 of these users' (and any other test's older than the cutoff), four at a time.
    expect(batches.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(12);
    expect(batches.slice(0, -1).every((n) => n === 4)).toBe(true);
    for (const user of users) expect((await audit(user)).records.map((r) => r.sql)).toEqual(["SELECT 'kept'"]);
  });
});

describe("when the store cannot take records", () => {
  it("refuses statements with 503 once the bounded buffer is full, runs nothing unrecorded, and recovers", async () => {
    const small = await createHarness({ env: { AUDIT_BUFFER_RECORDS: "3" } });
    const locker = new pg.Client({ connectionString: pgUrl(small.pgDatabase!.name) });
    try {
      const user = await small.newUser();
      const target = await sqliteTarget(small.sqliteRoot);
      const id = (await small.call("POST", "/databases/add_db_connection", { token: user.token, json: target.body })).body.db_connection.id as number;
      const run = (sql: string) => small.call("POST", `/databases/${id}/query`, { token: user.token, json: { sql } });
      expect((await run("SELECT 0")).status).toBe(200);
      await small.deps.audit!.flush();

      // A store that stops answering: every INSERT into the trail waits behind this lock.
      await locker.connect();
      await locker.query("BEGIN");
      await locker.query("LOCK TABLE audit_records IN ACCESS EXCLUSIVE MODE");
      const statuses: number[] = [];
      for (let i = 1; i <= 5; i++) statuses.push((await run(`SELECT ${i}`)).status);
      expect(statuses).toEqual([200, 200, 200, 503, 503]);
      const refused = await run("SELECT 6");
      expect(refused.body).toMatchObject({ code: "audit_unavailable", detail: expect.stringContaining("audit trail") });

      await locker.query("ROLLBACK");
      expect(await small.deps.audit!.flush()).toBe(true);
      expect((await run("SELECT 7")).status).toBe(200);
      await small.deps.audit!.flush();
      const page = await small.call("GET", "/api/audit", { token: user.token });
      // Every statement that ran is in the trail; the refused ones never reached the database.
      expect(page.body.records.map((r: { sql: string }) => r.sql)).toEqual(["SELECT 7", "SELECT 3", "SELECT 2", "SELECT 1", "SELECT 0"]);
    } finally {
      await locker.end().catch(() => undefined);
      await small.close();
    }
  });
});

describe("GET /api/audit when the store stops answering", () => {
  it("answers 503 store_unavailable within STORE_QUERY_TIMEOUT_MS while a page's read is stuck, and pages again once it is not", async () => {
    const small = await createHarness({ env: { STORE_QUERY_TIMEOUT_MS: "1000" } });
    const locker = new pg.Client({ connectionString: pgUrl(small.pgDatabase!.name) });
    try {
      const user = await small.newUser();
      await appendAuditRecords(small.deps.store, [recordOf({ ownerId: user.id, sql: "SELECT 1" })]);
      await locker.connect();
      await locker.query("BEGIN");
      await locker.query("LOCK TABLE audit_groups IN ACCESS EXCLUSIVE MODE");
      const started = Date.now();
      const stuck = await small.call("GET", "/api/audit", { token: user.token });
      expect(stuck.status, stuck.text).toBe(503);
      expect(stuck.body.code).toBe("store_unavailable");
      expect(Date.now() - started).toBeLessThan(5_000);
      await locker.query("ROLLBACK");
      const page = await small.call("GET", "/api/audit", { token: user.token });
      expect(page.status, page.text).toBe(200);
      expect(page.body.records.map((r: { sql: string }) => r.sql)).toEqual(["SELECT 1"]);
    } finally {
      await locker.end().catch(() => undefined);
      await small.close();
    }
  });
});

describe("a long statement waiting for the store", () => {
  it("is held as the part the record keeps, not whole: memory follows the records, not what was sent", async () => {
    const waiting = 30;
    const small = await createHarness({ env: { AUDIT_BUFFER_RECORDS: String(waiting) } });
    const locker = new pg.Client({ connectionString: pgUrl(small.pgDatabase!.name) });
    try {
      const user = await small.newUser();
      const target = await sqliteTarget(small.sqliteRoot);
      const id = (await small.call("POST", "/databases/add_db_connection", { token: user.token, json: target.body })).body.db_connection.id as number;
      expect(await small.deps.audit!.flush()).toBe(true);
      await locker.connect();
      await locker.query("BEGIN");
      await locker.query("LOCK TABLE audit_records IN ACCESS EXCLUSIVE MODE");
      collectGarbage();
      const before = v8.getHeapStatistics().used_heap_size;
      // Each a million characters, refused as too large and recorded all the same.
      for (let i = 0; i < waiting; i++) {
        const res = await small.call("POST", `/databases/${id}/query`, { token: user.token, json: { sql: `SELECT ${i} -- ${"x".repeat(999_980)}` } });
        expect(res.body.rule, res.text).toBe("too_large");
      }
      expect(small.deps.audit!.pending).toBe(waiting);
      collectGarbage();
      // 30 records of 4,096 characters: well under a megabyte. Held whole, 30 MB and more.
      expect(v8.getHeapStatistics().used_heap_size - before).toBeLessThan(10_000_000);
      await locker.query("ROLLBACK");
      expect(await small.deps.audit!.flush()).toBe(true);
      const [record] = (await small.call("GET", "/api/audit?limit=1", { token: user.token })).body.records;
      expect({ length: record.sql.length, whole: record.sql_length }).toEqual({ length: 4096, whole: `SELECT ${waiting - 1} -- `.length + 999_980 });
    } finally {
      await locker.end().catch(() => undefined);
      await small.close();
    }
  });
});

describe("when the store refuses the trail's writes", () => {
  /** Makes the store refuse every group of audit records with a statement that matches a rule's
   * pattern with its SQLSTATE, as a revoked permission (42501) or a value it cannot take (22023)
   * does. */
  async function refuse(h: Harness, ...rules: [sqlstate: string, pattern: string][]) {
    const checks = rules.map(([sqlstate, pattern]) => `IF EXISTS (SELECT FROM unnest(NEW.sql) s WHERE s LIKE '${pattern}') THEN RAISE EXCEPTION 'refused' USING ERRCODE = '${sqlstate}'; END IF;`);
    await h.deps.store.db.execute(sql.raw(`CREATE FUNCTION pulse_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN ${checks.join(" ")} RETURN NEW; END $$`));
    await h.deps.store.db.execute(sql.raw("CREATE TRIGGER pulse_test_refuse BEFORE INSERT ON audit_groups FOR EACH ROW EXECUTE FUNCTION pulse_test_refuse()"));
    return async () => {
      await h.deps.store.db.execute(sql.raw("DROP TRIGGER pulse_test_refuse ON audit_groups"));
      await h.deps.store.db.execute(sql.raw("DROP FUNCTION pulse_test_refuse()"));
    };
  }

  it.each([
    ["a revoked permission", "42501"],
    ["a constraint every record fails, refused as data", "23514"],
  ])("keeps every record while the store refuses them all (%s), and refuses statements once full", async (_, sqlstate) => {
    const small = await createHarness({ env: { AUDIT_BUFFER_RECORDS: "3" } });
    try {
      const user = await small.newConnectedUser();
      const run = (sql: string) => small.call("POST", "/query", { token: user.token, json: { sql } });
      expect(await small.deps.audit!.flush()).toBe(true); // the connection's introspection
      const allow = await refuse(small, [sqlstate, "%"]);
      const statuses: number[] = [];
      for (let i = 1; i <= 4; i++) {
        statuses.push((await run(`SELECT ${i}`)).status);
        expect(await small.deps.audit!.flush()).toBe(false);
      }
      expect(statuses).toEqual([200, 200, 200, 503]);
      expect(small.deps.audit!.pending).toBe(3);
      await allow();
      expect(await small.deps.audit!.flush()).toBe(true);
      const page = await small.call("GET", "/api/audit?source=query", { token: user.token });
      expect(page.body.records.map((r: { sql: string }) => r.sql)).toEqual(["SELECT 3", "SELECT 2", "SELECT 1"]);
    } finally {
      await small.close();
    }
  });

  it("drops and logs only a record the store refuses as data, and writes the rest of its batch", async () => {
    const own = await createHarness();
    try {
      const user = await own.newConnectedUser();
      const run = (sql: string) => own.call("POST", "/query", { token: user.token, json: { sql } });
      const allow = await refuse(own, ["22023", "%poison%"]);
      try {
        for (const statement of ["SELECT 'before'", "SELECT 'poison'", "SELECT 'after'"]) expect((await run(statement)).status).toBe(200);
        expect(await own.deps.audit!.flush()).toBe(true);
      } finally {
        await allow();
      }
      const page = await own.call("GET", "/api/audit?source=query", { token: user.token });
      expect(page.body.records.map((r: { sql: string }) => r.sql)).toEqual(["SELECT 'after'", "SELECT 'before'"]);
      const dropped = own.logs.join("").split("\n").filter((line) => line.includes("an audit record was refused by the store and dropped"));
      expect(dropped).toHaveLength(1);
      expect(JSON.parse(dropped[0]!)).toMatchObject({ owner_id: user.id, err: expect.objectContaining({ message: expect.stringContaining("refused") }) });
    } finally {
      await own.close();
    }
  });

  it("writes each record once when the store fails midway through finding the one it refuses", async () => {
    // The three records must reach the store as one batch: a timed write between two statements
    // (a loaded machine's requests take longer than its 200 ms) would write 'first' with
    // 'poison', and drop 'poison' as a record the store refuses while it takes others.
    const own = await createHarness({ auditFlushEveryMs: 3_600_000 });
    try {
      const user = await own.newConnectedUser();
      const run = (sql: string) => own.call("POST", "/query", { token: user.token, json: { sql } });
      expect(await own.deps.audit!.flush()).toBe(true);
      const allow = await refuse(own, ["22023", "%poison%"], ["42501", "%denied%"]);
      try {
        for (const statement of ["SELECT 'first'", "SELECT 'poison'", "SELECT 'denied'"]) expect((await run(statement)).status).toBe(200);
        // 'first' goes; the store then fails on 'denied' before 'poison' can be judged.
        expect(await own.deps.audit!.flush()).toBe(false);
        expect(own.deps.audit!.pending).toBe(2);
      } finally {
        await allow();
      }
      expect(await own.deps.audit!.flush()).toBe(true);
      const page = await own.call("GET", "/api/audit?source=query", { token: user.token });
      expect(page.body.records.map((r: { sql: string }) => r.sql)).toEqual(["SELECT 'denied'", "SELECT 'poison'", "SELECT 'first'"]);
    } finally {
      await own.close();
    }
  });

  it("drops a refused record only once the store has taken another of its batch", async () => {
    const own = await createHarness();
    try {
      const user = await own.newConnectedUser();
      const run = (sql: string) => own.call("POST", "/query", { token: user.token, json: { sql } });
      expect(await own.deps.audit!.flush()).toBe(true);
      const allow = await refuse(own, ["22023", "%poison%"]);
      try {
        expect((await run("SELECT 'poison'")).status).toBe(200);
        // Alone, it cannot tell a bad record from a store that refuses every record: it waits.
        expect(await own.deps.audit!.flush()).toBe(false);
        expect(own.deps.audit!.pending).toBe(1);
        expect((await run("SELECT 'after'")).status).toBe(200);
        expect(await own.deps.audit!.flush()).toBe(true);
      } finally {
        await allow();
      }
      const page = await own.call("GET", "/api/audit?source=query", { token: user.token });
      expect(page.body.records.map((r: { sql: string }) => r.sql)).toEqual(["SELECT 'after'"]);
      expect(own.logs.join("").split("an audit record was refused by the store and dropped")).toHaveLength(2);
    } finally {
      await own.close();
    }
  });
});

/** The audit writer's COPY sessions in `database` waiting for a lock. */
const copyWaiting = (database: string) =>
  pgAdmin<{ pid: number }>(
    "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND state = 'active' AND wait_event_type = 'Lock' AND query LIKE 'COPY audit_groups%'",
    "test",
    [database],
  );

describe("when the store loses the writer's session mid-write", () => {
  it("keeps the records, keeps serving, and writes them on the next flush", async () => {
    const own = await createHarness();
    const locker = new pg.Client({ connectionString: pgUrl(own.pgDatabase!.name) });
    try {
      const user = await own.newConnectedUser();
      await own.deps.audit!.flush();
      // The COPY waits behind this lock, on a session of its own, until that session is killed.
      // Taken before the statement, so that no timed flush writes its record first.
      await locker.connect();
      await locker.query("BEGIN");
      await locker.query("LOCK TABLE audit_records IN ACCESS EXCLUSIVE MODE");
      expect((await own.call("POST", "/query", { token: user.token, json: { sql: "SELECT 'kept'" } })).status).toBe(200);
      const waiting = own.deps.audit!.pending;
      expect(waiting).toBeGreaterThan(0);
      const writing = own.deps.audit!.flush();
      let writer: { pid: number }[] = [];
      for (let i = 0; i < 100 && writer.length === 0; i++) {
        writer = await copyWaiting(own.pgDatabase!.name);
        if (writer.length === 0) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(writer).toHaveLength(1);
      await pgAdmin("SELECT pg_terminate_backend($1)", "test", [writer[0]!.pid]);
      expect(await writing).toBe(false);
      expect(own.deps.audit!.pending).toBe(waiting);

      await locker.query("ROLLBACK");
      expect((await own.call("POST", "/query", { token: user.token, json: { sql: "SELECT 'after'" } })).status).toBe(200);
      expect(await own.deps.audit!.flush()).toBe(true);
      const page = await own.call("GET", "/api/audit?source=query", { token: user.token });
      expect(page.body.records.map((r: { sql: string }) => r.sql)).toEqual(["SELECT 'after'", "SELECT 'kept'"]);
    } finally {
      await locker.end().catch(() => undefined);
      await own.close();
    }
  });
});

describe("when the network to the store is cut mid-write", () => {
  it("fails that write as the store being unavailable, without ending the process, and the next one succeeds", async () => {
    const database = await createPgDatabase("pulse_audit_cut");
    const relay = await startTcpRelay({ host: PG.host, port: PG.port });
    const store = await openStore({ databaseUrl: `postgresql://${PG.user}@127.0.0.1:${relay.port}/${database.name}` });
    const locker = new pg.Client({ connectionString: database.url });
    try {
      await store.migrate();
      const record = recordOf({ ownerId: 1, sql: "SELECT 1" });
      await locker.connect();
      await locker.query("BEGIN");
      await locker.query("LOCK TABLE audit_records IN ACCESS EXCLUSIVE MODE");
      const writing = appendAuditRecords(store, [record]).then(
        () => "written",
        (err: unknown) => (isStoreUnavailable(err) ? "unavailable" : `failed otherwise: ${String(err)}`),
      );
      for (let i = 0; i < 100 && (await copyWaiting(database.name)).length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 50));
      expect(await copyWaiting(database.name)).toHaveLength(1);
      // The pool's client is checked out: with no listener of ours, pg's 'error' event would end the process.
      relay.cut();
      expect(await writing).toBe("unavailable");
      await locker.query("ROLLBACK");
      await appendAuditRecords(store, [record]);
      expect(await pgAdmin("SELECT sql FROM audit_records", database.name)).toEqual([{ sql: "SELECT 1" }]);
    } finally {
      await locker.end().catch(() => undefined);
      await store.close();
      await relay.close();
      await database.drop();
    }
  });
});

describe("when the store goes silent mid-write", () => {
  it("fails that write within the store's query bound as the store being unavailable, and the next one succeeds", async () => {
    const database = await createPgDatabase("pulse_audit_silent");
    const relay = await startTcpRelay({ host: PG.host, port: PG.port });
    const store = await openStore({ databaseUrl: `postgresql://${PG.user}@127.0.0.1:${relay.port}/${database.name}`, queryTimeoutMs: 500 });
    try {
      await store.migrate();
      const record = recordOf({ ownerId: 1, sql: "SELECT 1" });
      await appendAuditRecords(store, [record]);
      relay.freeze();
      const started = Date.now();
      const outcome = await appendAuditRecords(store, [record]).then(
        () => "written",
        (err: unknown) => (isStoreUnavailable(err) ? "unavailable" : `failed otherwise: ${String(err)}`),
      );
      expect(outcome).toBe("unavailable");
      expect(Date.now() - started).toBeLessThan(5_000);
      await appendAuditRecords(store, [record]);
      expect(await pgAdmin("SELECT count(*)::int AS n FROM audit_records", database.name)).toEqual([{ n: 2 }]);
    } finally {
      await store.close();
      await relay.close();
      await database.drop();
    }
  });
});

describe("a store that cannot hold every character", () => {
  // A statement's text is any Unicode. A LATIN1 database refuses an emoji as data (22P05), so
  // a user sending a few dozen such statements filled the head of the trail's buffer with
  // records the store refused, and only those: the writer took that for the store failing,
  // kept them, and refused everyone's statements (503 audit_unavailable) from then on.
  it("is refused at start-up, naming its encoding", async () => {
    const name = uniqueName("pulse_latin1");
    await pgAdmin(`CREATE DATABASE "${name}" TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'`);
    try {
      await expect(openStore({ databaseUrl: pgUrl(name) })).rejects.toThrow(/^DATABASE_URL: the database .* is encoded in LATIN1/);
    } finally {
      await pgAdmin(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    }
  });
});

describe("on the embedded store (PGlite)", () => {
  it("records, lists and prunes as on PostgreSQL", async () => {
    const embedded = await createHarness({ store: "pglite", env: { AUDIT_RETENTION_DAYS: "30" } });
    try {
      const user = await embedded.newConnectedUser();
      const sql = "SELECT 'tab\there' AS \"back\\slash\"";
      expect((await embedded.call("POST", "/query", { token: user.token, json: { sql } })).status).toBe(200);
      await embedded.deps.audit!.flush();
      // Written last, listed by its time: after the query's.
      const old = recordOf({ at: new Date(Date.now() - 31 * 86_400_000), ownerId: user.id, sql: "SELECT 'old'" });
      await appendAuditRecords(embedded.deps.store, [old]);
      const list = async () => (await embedded.call("GET", "/api/audit?source=query", { token: user.token })).body.records.map((r: { sql: string }) => r.sql);
      expect(await list()).toEqual([sql, "SELECT 'old'"]);
      await embedded.scheduler.tick();
      expect(await list()).toEqual([sql]);
    } finally {
      await embedded.close();
    }
  });
});

describe("shutdown", () => {
  it("writes the records still buffered before the store closes", async () => {
    const own = await createHarness({ env: { PORT: "0", HOST: "127.0.0.1" } });
    try {
      const user = await own.newUser();
      const target = await sqliteTarget(own.sqliteRoot);
      const id = (await own.call("POST", "/databases/add_db_connection", { token: user.token, json: target.body })).body.db_connection.id as number;
      const service = await startService(own.deps);
      const res = await fetch(`http://127.0.0.1:${service.port}/databases/${id}/query`, {
        method: "POST",
        headers: { authorization: `Bearer ${user.token}`, "content-type": "application/json" },
        body: JSON.stringify({ sql: "SELECT 'last words'" }),
      });
      expect(res.status).toBe(200);
      await service.stop();
      const rows = await pgAdmin<{ sql: string }>("SELECT sql FROM audit_records WHERE owner_id = $1", own.pgDatabase!.name, [user.id]);
      expect(rows).toEqual([{ sql: "SELECT 'last words'" }]);
    } finally {
      await own.close();
    }
  });

  it("says how many records it could not write when the store does not take them within the close bound", async () => {
    const own = await createHarness({ env: { PORT: "0", HOST: "127.0.0.1" } });
    const locker = new pg.Client({ connectionString: pgUrl(own.pgDatabase!.name) });
    await locker.connect();
    try {
      const user = await own.newUser();
      const target = await sqliteTarget(own.sqliteRoot);
      const id = (await own.call("POST", "/databases/add_db_connection", { token: user.token, json: target.body })).body.db_connection.id as number;
      await own.deps.audit!.flush();
      // The trail's last write waits on this lock past the close's bound.
      await locker.query("BEGIN; LOCK TABLE audit_records IN ACCESS EXCLUSIVE MODE");
      const service = await startService(own.deps, { closeTimeoutMs: 500 });
      for (const n of [1, 2, 3]) {
        const res = await fetch(`http://127.0.0.1:${service.port}/databases/${id}/query`, {
          method: "POST",
          headers: { authorization: `Bearer ${user.token}`, "content-type": "application/json" },
          body: JSON.stringify({ sql: `SELECT ${n}` }),
        });
        expect(res.status).toBe(200);
      }
      const from = own.logs.length;
      await service.stop();
      const lines = own.logs.slice(from).join("").split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines).toContainEqual(expect.objectContaining({ msg: "shut down without waiting for everything to close", audit_records_lost: 3 }));
    } finally {
      await locker.query("ROLLBACK");
      await locker.end();
      await own.close().catch(() => {});
    }
  });
});
