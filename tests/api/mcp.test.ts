// POST /mcp with the official SDK's client (Client + StreamableHTTPClientTransport) against Pulse
// served over real HTTP: the tools on PostgreSQL, MariaDB and SQLite (Chinook), failures as
// tool errors, authentication, two instances behind one Redis, the hostile corpus replayed
// through run_query, and health-aware results in run_query, /query and /ask.

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import Database from "better-sqlite3";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";

import { loadChinookMaria, loadChinookPostgres } from "../support/chinook.js";
import { lastToolResult, startQueuedFakeOpenAI, type FakeOpenAI, type FakeStep } from "../support/fake-openai.js";
import { createHarness, type Harness } from "../support/harness.js";
import { GUARD_FIXTURE, HOSTILE_CORPUS } from "../support/hostile-corpus.js";
import { HEALTH_CACHE_MS } from "../../src/services/table-health.js";
import { addConnection, monitorTable } from "../support/monitoring.js";
import { createMariaDatabase, createPgDatabase, mariaAdmin, MARIADB, PG, uniqueName } from "../support/services.js";
import { sqliteTarget } from "../support/targets.js";

type Dialect = "postgresql" | "mysql" | "sqlite";

/** Replies the next model request gets, in order; tests fill it. */
const replies: FakeStep[] = [];
let fake: FakeOpenAI;
let h: Harness;
let second: Harness;
let base: string;
let secondBase: string;
const drops: (() => Promise<void>)[] = [];

beforeAll(async () => {
  fake = await startQueuedFakeOpenAI(replies);
  const env = {
    OPENAI_BASE_URL: fake.baseUrl,
    OPENAI_MODEL: "fake-model",
    OPENAI_TIMEOUT_MS: "3000",
    ASK_PER_MINUTE: "1000",
    QUERY_TIMEOUT_MS: "5000",
    // The hostile corpus is hundreds of calls from one user to one database.
    CONNECTION_QUERIES_PER_MINUTE: "100000",
    USER_QUERIES_PER_MINUTE: "100000",
  };
  h = await createHarness({ store: "postgresql", sessions: "redis", env });
  second = await createHarness({ shareWith: { config: h.config, deps: h.deps, redis: h.redis, sessionsKind: "redis" }, env });
  base = (await h.serve()).url;
  secondBase = (await second.serve()).url;
}, 120_000);
afterAll(async () => {
  await second?.close();
  await h?.close();
  await fake?.close();
  for (const drop of drops) await drop();
});
beforeEach(() => {
  replies.length = 0;
});

/** An MCP client of `token`; `fetch` may spread its requests over several instances. */
async function mcpClient(token: string, options: { url?: string; fetch?: typeof fetch } = {}) {
  const transport = new StreamableHTTPClientTransport(new URL(`${options.url ?? base}/mcp`), {
    requestInit: { headers: { authorization: `Bearer ${token}` } },
    ...(options.fetch && { fetch: options.fetch }),
  });
  const client = new Client({ name: "pulse-test", version: "1.0.0" });
  await client.connect(transport);
  return client;
}

const call = async (client: Client, name: string, args: Record<string, unknown> = {}) => (await client.callTool({ name, arguments: args })) as CallToolResult;
const textOf = (result: CallToolResult) => result.content.map((c) => (c.type === "text" ? c.text : "")).join("\n");
const structured = (result: CallToolResult) => result.structuredContent as Record<string, any>;

/** Chinook on each dialect, as a connection body; names as each script spells them. */
interface Chinook {
  body: Record<string, unknown>;
  artists: string;
  tracks: string;
}

async function chinookOf(dialect: Dialect): Promise<Chinook> {
  if (dialect === "postgresql") {
    const db = await loadChinookPostgres();
    drops.push(() => db.drop());
    return {
      body: { db_type: "postgresql", host: PG.host, port: PG.port, database_name: db.name, username: PG.user, db_password: "unused" },
      artists: "SELECT name FROM artist ORDER BY artist_id LIMIT 3",
      tracks: "SELECT * FROM track",
    };
  }
  if (dialect === "mysql") {
    const db = await loadChinookMaria();
    const user = uniqueName("pulse_mcp").slice(0, 60);
    const password = uniqueName("pw");
    for (const host of ["%", "localhost"]) {
      await mariaAdmin(`CREATE USER '${user}'@'${host}' IDENTIFIED BY '${password}'`);
      await mariaAdmin(`GRANT SELECT ON \`${db.name}\`.* TO '${user}'@'${host}'`);
    }
    drops.push(async () => {
      for (const host of ["%", "localhost"]) await mariaAdmin(`DROP USER IF EXISTS '${user}'@'${host}'`);
      await db.drop();
    });
    return {
      body: { db_type: "mysql", host: MARIADB.host, port: MARIADB.port, database_name: db.name, username: user, db_password: password },
      artists: "SELECT Name FROM Artist ORDER BY ArtistId LIMIT 3",
      tracks: "SELECT * FROM Track",
    };
  }
  const target = await sqliteTarget(h.sqliteRoot);
  return { body: target.body, artists: "SELECT Name FROM Artist ORDER BY ArtistId LIMIT 3", tracks: "SELECT * FROM Track" };
}

describe("POST /mcp: the protocol", () => {
  it("initializes and lists Pulse's seven tools, each with a short description", async () => {
    const user = await h.newUser();
    const client = await mcpClient(user.token);
    expect(client.getServerVersion()?.name).toBe("pulse");
    // No list-change notifications promised: a stateless server has no stream to send them on.
    expect(client.getServerCapabilities()).toMatchObject({ tools: { listChanged: false }, resources: { listChanged: false } });
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(["ask", "create_monitor", "describe_schema", "list_alerts", "list_connections", "run_query", "table_health"]);
    for (const tool of tools) expect(tool.description!.length).toBeLessThan(300);
    await client.close();
  });

  it("answers GET with 405 (stateless: no server-initiated stream), and bad bodies and headers with a 4xx naming what to fix", async () => {
    const user = await h.newUser();
    const get = await fetch(`${base}/mcp`, { headers: { authorization: `Bearer ${user.token}`, accept: "text/event-stream" } });
    expect(get.status).toBe(405);
    expect(get.headers.get("allow")).toContain("POST");
    expect(await get.json()).toMatchObject({ code: "method_not_allowed", jsonrpc: "2.0", error: { code: -32000 }, id: null });
    const bad = await fetch(`${base}/mcp`, {
      method: "POST",
      headers: { authorization: `Bearer ${user.token}`, "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: "{not json",
    });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: "bad_request", detail: "Malformed JSON in request body", jsonrpc: "2.0", error: { code: -32700 }, id: null });
    const notRpc = await fetch(`${base}/mcp`, {
      method: "POST",
      headers: { authorization: `Bearer ${user.token}`, "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, mehtod: "tools/list" }),
    });
    expect(notRpc.status).toBe(422);
    expect(await notRpc.json()).toMatchObject({ code: "invalid_input", errors: expect.arrayContaining([{ path: "body.mehtod", message: "unknown field" }]), jsonrpc: "2.0", error: { code: -32600 }, id: null });
    // Whatever refuses it (a query string, a batch, another media type, no token), an MCP client
    // reads a JSON-RPC error saying why.
    const asSent = { authorization: `Bearer ${user.token}`, "content-type": "application/json", accept: "application/json, text/event-stream" };
    const tools = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" });
    for (const [init, url, status] of [
      [{ headers: asSent, body: tools }, `${base}/mcp?session=1`, 422],
      [{ headers: asSent, body: `[${tools}]` }, `${base}/mcp`, 422],
      [{ headers: { ...asSent, "content-type": "text/plain" }, body: tools }, `${base}/mcp`, 415],
      [{ headers: { ...asSent, authorization: "Bearer nope" }, body: tools }, `${base}/mcp`, 401],
      [{ method: "GET", headers: { accept: "text/event-stream" } }, `${base}/mcp`, 401],
    ] as const) {
      const refused = await fetch(url, { method: "POST", ...init });
      expect(refused.status, url).toBe(status);
      const body = (await refused.json()) as { detail: string; error: { message: string } };
      expect(body, `${status} ${url}`).toMatchObject({ jsonrpc: "2.0", error: { code: status === 401 ? -32000 : -32600 }, id: null });
      expect(body.error.message).toBe(body.detail);
    }
    const noAccept = await fetch(`${base}/mcp`, {
      method: "POST",
      headers: { authorization: `Bearer ${user.token}`, "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
    });
    expect(noAccept.status).toBe(406);
    expect(await noAccept.json()).toMatchObject({ code: "not_acceptable", detail: expect.stringContaining("text/event-stream"), jsonrpc: "2.0", error: { code: -32000 } });
    const rpcHeaders = { authorization: `Bearer ${user.token}`, "content-type": "application/json", accept: "application/json, text/event-stream" };
    const oldVersion = await fetch(`${base}/mcp`, {
      method: "POST",
      headers: { ...rpcHeaders, "mcp-protocol-version": "1999-01-01" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
    });
    expect(oldVersion.status).toBe(400);
    expect(await oldVersion.json()).toMatchObject({ code: "bad_request", detail: expect.stringContaining("Unsupported protocol version: 1999-01-01"), error: { code: -32000 } });
    const notification = await fetch(`${base}/mcp`, { method: "POST", headers: rpcHeaders, body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }) });
    expect(notification.status).toBe(202);
    expect(await notification.text()).toBe("");
    // Messages the body's schema takes but the SDK would not (no handler would ever answer them).
    for (const message of [
      { jsonrpc: "2.0", id: 1.5, method: "tools/list" },
      { jsonrpc: "2.0", id: 2 ** 53, method: "tools/list" },
      { jsonrpc: "2.0", id: 3, method: "tools/list", params: { _meta: "x" } },
    ]) {
      const refused = await fetch(`${base}/mcp`, { method: "POST", headers: rpcHeaders, body: JSON.stringify(message), signal: AbortSignal.timeout(5_000) });
      expect(refused.status, JSON.stringify(message)).toBe(400);
      expect(await refused.json()).toMatchObject({ code: "invalid_message", detail: expect.stringContaining("safe integer"), jsonrpc: "2.0", error: { code: -32700 }, id: null });
    }
    const unknown = await fetch(`${base}/mcp`, { method: "POST", headers: rpcHeaders, body: JSON.stringify({ jsonrpc: "2.0", id: "x-1", method: "tools/nope" }) });
    expect(unknown.status).toBe(200);
    expect(await unknown.json()).toMatchObject({ jsonrpc: "2.0", id: "x-1", error: { code: -32601 } });
    // Params the SDK's own schema refuses: invalid params saying what to fix, not an internal error.
    for (const [message, says] of [
      [{ jsonrpc: "2.0", id: 4, method: "tools/call", params: { name: "run_query", arguments: null } }, /^Invalid input: request\.params\.arguments: /],
      [{ jsonrpc: "2.0", id: 5, method: "tools/call", params: {} }, /^Invalid input: request\.params\.name: required/],
      [{ jsonrpc: "2.0", id: 6, method: "initialize", params: {} }, /^Invalid input: request\.params\.protocolVersion: required/],
      [{ jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: "list_connections", task: { ttl: 1000 } } }, /^request\.params\.task: .*send the call without task$/],
    ] as const) {
      const res = await fetch(`${base}/mcp`, { method: "POST", headers: rpcHeaders, body: JSON.stringify(message) });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { error: { code: number; message: string } };
      expect(body.error.code, JSON.stringify(message)).toBe(-32602);
      expect(body.error.message).toMatch(says);
    }
    // Pulse's refusals in its own words, without the SDK's "MCP error -32602: " before them.
    const foreign = await fetch(`${base}/mcp`, {
      method: "POST",
      headers: rpcHeaders,
      body: JSON.stringify({ jsonrpc: "2.0", id: 8, method: "resources/read", params: { uri: "pulse://connections/2000000000/schema" } }),
    });
    expect(((await foreign.json()) as { error: unknown }).error).toEqual({ code: -32602, message: "not_found: Database connection not found" });
  });

  it("answers concurrent calls, all with the same JSON-RPC id, each with its own result", async () => {
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, (await sqliteTarget(h.sqliteRoot)).body);
    const rpcHeaders = { authorization: `Bearer ${user.token}`, "content-type": "application/json", accept: "application/json, text/event-stream" };
    // 30: within what one database's budget lets run or wait (CONNECTION_MAX_CONCURRENCY and
    // CONNECTION_MAX_WAITING, 4 + 32), so that none is refused however slowly the machine runs.
    const answers = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        fetch(`${base}/mcp`, {
          method: "POST",
          headers: rpcHeaders,
          body: JSON.stringify({ jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: "run_query", arguments: { connection_id: connectionId, sql: `SELECT ${i} AS n` } } }),
        }).then((r) => r.json() as Promise<{ id: number; result: { structuredContent: { rows: unknown[][] } } }>),
      ),
    );
    answers.forEach((answer, i) => {
      expect(answer.id).toBe(7);
      expect(answer.result?.structuredContent?.rows, JSON.stringify(answer).slice(0, 600)).toEqual([[i]]);
    });
  });
});

describe.each(["postgresql", "mysql", "sqlite"] as const)("POST /mcp tools on %s", (dialect) => {
  let chinook: Chinook;
  let user: Awaited<ReturnType<Harness["newUser"]>>;
  let connectionId: number;
  let client: Client;
  beforeAll(async () => {
    chinook = await chinookOf(dialect);
    user = await h.newUser();
    connectionId = await addConnection(h, user.token, chinook.body);
    client = await mcpClient(user.token);
  }, 120_000);
  afterAll(async () => {
    await client?.close();
  });

  it("list_connections lists the user's connection", async () => {
    const result = await call(client, "list_connections");
    expect(result.isError).toBeFalsy();
    expect(structured(result).connections).toEqual([expect.objectContaining({ id: connectionId, dialect })]);
    expect(textOf(result)).toContain(`${connectionId}: `);
  });

  it("describe_schema gives the ranked schema context, and named tables in full", async () => {
    const whole = await call(client, "describe_schema", { connection_id: connectionId, question: "artists and their albums" });
    expect(whole.isError).toBeFalsy();
    expect(textOf(whole).toLowerCase()).toContain("artist(");
    expect(structured(whole).tables.length).toBeGreaterThanOrEqual(11);
    const named = await call(client, "describe_schema", { connection_id: connectionId, tables: [dialect === "postgresql" ? "album" : "Album", "nope"] });
    expect(structured(named).tables).toHaveLength(1);
    expect(structured(named).unknown).toEqual(["nope"]);
  });

  it("run_query returns compact text and the rows as structured content", async () => {
    const result = await call(client, "run_query", { connection_id: connectionId, sql: chinook.artists });
    expect(result.isError).toBeFalsy();
    expect(structured(result)).toMatchObject({ rows: [["AC/DC"], ["Accept"], ["Aerosmith"]], row_count: 3, truncated: false, health: [] });
    expect(textOf(result)).toContain("AC/DC\nAccept\nAerosmith");
  });

  it("run_query stops at the row cap and says it truncated", async () => {
    const result = await call(client, "run_query", { connection_id: connectionId, sql: chinook.tracks, max_rows: 5 });
    expect(structured(result)).toMatchObject({ row_count: 5, truncated: true });
    expect(structured(result).rows).toHaveLength(5);
    expect(textOf(result)).toContain("truncated");
  });

  it("run_query refuses a write as a tool error naming the guard's rule", async () => {
    const result = await call(client, "run_query", { connection_id: connectionId, sql: "DELETE FROM Artist" });
    expect(result.isError).toBe(true);
    expect(structured(result)).toMatchObject({ code: "sql_refused", rule: "not_read_only" });
    expect(textOf(result)).toMatch(/^sql_refused \(not_read_only\): /);
  });

  it("refuses a NUL or half a surrogate pair in an argument as a tool error the client's model reads, not a failed request", async () => {
    for (const sql of ["SELECT 'a\u0000b'", "SELECT '\ud800'"]) {
      const result = await call(client, "run_query", { connection_id: connectionId, sql });
      expect(result.isError, sql).toBe(true);
      expect(structured(result)).toMatchObject({ code: "invalid_input", errors: [{ path: "arguments.sql", message: expect.stringMatching(/NUL|surrogate/) }] });
    }
    const described = await call(client, "describe_schema", { connection_id: connectionId, question: "tracks \ud83d" });
    expect(described.isError).toBe(true);
    expect(textOf(described)).toMatch(/^invalid_input: Invalid input: arguments\.question: .*surrogate/s);
  });

  it("run_query reports a parse error and an unknown table as tool errors", async () => {
    const parse = await call(client, "run_query", { connection_id: connectionId, sql: "SELEC 1" });
    expect(parse.isError).toBe(true);
    expect(structured(parse)).toMatchObject({ code: "sql_refused", rule: "parse_error" });
    const missing = await call(client, "run_query", { connection_id: connectionId, sql: "SELECT * FROM no_such_table" });
    expect(missing.isError).toBe(true);
    expect(structured(missing).code).toBe("sql_failed");
  });

  it("create_monitor, list_alerts and table_health work on the connection's table", async () => {
    const table = dialect === "postgresql" ? "artist" : "Artist";
    const created = await call(client, "create_monitor", { connection_id: connectionId, table });
    expect(created.isError).toBeFalsy();
    const tableId = structured(created).table.id as number;
    expect(structured(created).table).toMatchObject({ connection_id: connectionId, table, checks: [{ kind: "volume" }, { kind: "schema_drift" }] });
    const health = await call(client, "table_health", { table_id: tableId });
    expect(health.isError).toBeFalsy();
    expect(structured(health)).toMatchObject({ table: { id: tableId }, latest_runs: [], open_alerts: [] });
    const run = await h.call("POST", `/api/tables/${tableId}/run`, { token: user.token });
    expect(run.status).toBe(200);
    const after = await call(client, "table_health", { table_id: tableId });
    expect(structured(after).latest_runs.map((r: { check: string }) => r.check).sort()).toEqual(["schema_drift", "volume"]);
    // A check taken off the table no longer speaks for its health (its runs stay in the history).
    const changed = await h.call("PATCH", `/api/tables/${tableId}`, { token: user.token, json: { checks: [{ kind: "volume" }] } });
    expect(changed.status, changed.text).toBe(200);
    const now = await call(client, "table_health", { table_id: tableId });
    expect(structured(now).latest_runs.map((r: { check: string }) => r.check)).toEqual(["volume"]);
    const alerts = await call(client, "list_alerts");
    expect(alerts.isError).toBeFalsy();
    expect(structured(alerts).alerts).toEqual([]);
    // What POST /api/tables takes: a schedule read in a zone, and when alerts open and resolve.
    const scheduled = await call(client, "create_monitor", { connection_id: connectionId, table, schedule: "0 9 * * *", timezone: "Europe/Paris", alert: { open_after: 3, resolve_after: 1 } });
    expect(scheduled.isError, textOf(scheduled)).toBeFalsy();
    expect(structured(scheduled).table).toMatchObject({ schedule: "0 9 * * *", timezone: "Europe/Paris", alert: { open_after: 3, resolve_after: 1 } });
  });

  it("ask runs the agent on the named connection", async () => {
    replies.push({ toolCalls: [{ name: "run_query", args: { sql: chinook.artists } }] });
    replies.push({ content: "AC/DC, Accept and Aerosmith." });
    const result = await call(client, "ask", { connection_id: connectionId, question: "Name three artists" });
    expect(result.isError).toBeFalsy();
    expect(structured(result)).toMatchObject({
      answer: "AC/DC, Accept and Aerosmith.",
      sql: [chinook.artists],
      statements: [{ outcome: "ok", row_count: 3 }],
      thread_id: expect.stringMatching(/^mcp-/),
      health: [],
    });
    expect(textOf(result)).toContain(chinook.artists);
  });
});

describe("POST /mcp tool errors", () => {
  it("answers a timeout, an unknown connection, invalid arguments and a bad monitor as tool errors", async () => {
    const user = await h.newUser();
    const db = await createPgDatabase("pulse_mcp");
    drops.push(() => db.drop());
    const connectionId = await addConnection(h, user.token, {
      db_type: "postgresql",
      host: PG.host,
      port: PG.port,
      database_name: db.name,
      username: PG.user,
      db_password: "unused",
    });
    const client = await mcpClient(user.token);
    const slow = await call(client, "run_query", { connection_id: connectionId, sql: "SELECT count(*) FROM generate_series(1, 1000000000)", timeout_ms: 200 });
    expect(slow.isError).toBe(true);
    expect(structured(slow)).toMatchObject({ code: "query_timeout" });
    const unknown = await call(client, "run_query", { connection_id: 2_000_000_000, sql: "SELECT 1" });
    expect(unknown.isError).toBe(true);
    expect(structured(unknown).code).toBe("not_found");
    const invalid = await call(client, "run_query", { connection_id: "one", sql: "SELECT 1" });
    expect(invalid.isError).toBe(true);
    expect(textOf(invalid)).toContain("connection_id");
    const monitor = await call(client, "create_monitor", { connection_id: connectionId, table: "no_such_table" });
    expect(monitor.isError).toBe(true);
    expect(structured(monitor).code).toBe("invalid_input");
    // Named as the client sent it: a tool's arguments, not an HTTP body.
    expect(structured(monitor).errors).toEqual([{ path: "arguments.table", message: expect.stringContaining("no_such_table") }]);
    expect(textOf(monitor)).toContain("Invalid input: arguments.table: ");
    await client.close();
  });

  it("refuses a misspelt or unknown argument as a tool error naming it, never running on the default instead", async () => {
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, (await sqliteTarget(h.sqliteRoot)).body);
    const client = await mcpClient(user.token);
    const query = await call(client, "run_query", { connection_id: connectionId, sql: "SELECT Name FROM Artist", max_row: 1 });
    expect(query.isError).toBe(true);
    // Worded as Pulse's own tool errors are, naming the argument as the HTTP API names a field.
    expect(structured(query)).toEqual({ code: "invalid_input", detail: "Invalid input: arguments.max_row: unknown field", errors: [{ path: "arguments.max_row", message: "unknown field" }] });
    expect(textOf(query)).toMatch(/^invalid_input: /);
    expect(textOf(query)).not.toContain("AC/DC");
    const monitor = await call(client, "create_monitor", { connection_id: connectionId, table: "Album", intervl_seconds: 60 });
    expect(monitor.isError).toBe(true);
    expect(textOf(monitor)).toContain("intervl_seconds");
    // Nothing was made with the default interval.
    expect((await h.call("GET", "/api/tables", { token: user.token })).body).toEqual([]);
    // A tool Pulse does not have, whatever its name.
    for (const name of ["drop_everything", "__proto__", "constructor"]) {
      expect(structured(await call(client, name)), name).toEqual({ code: "not_found", detail: `No tool named "${name}"; tools/list names Pulse's` });
    }
    // The tool list says so to clients that read it.
    const { tools } = await client.listTools();
    expect(tools.filter((t) => t.inputSchema.additionalProperties !== false)).toEqual([]);
    await client.close();
  });

  it("answers ask without a model as a tool error saying how to configure one", async () => {
    const bare = await createHarness();
    try {
      const url = (await bare.serve()).url;
      const user = await bare.newConnectedUser();
      const [connection] = (await bare.call("GET", "/databases", { token: user.token })).body;
      const client = await mcpClient(user.token, { url });
      const result = await call(client, "ask", { connection_id: connection.id, question: "How many artists?" });
      expect(result.isError).toBe(true);
      expect(structured(result).code).toBe("model_not_configured");
      expect(textOf(result)).toContain("OPENAI_BASE_URL");
      await client.close();
    } finally {
      await bare.close();
    }
  }, 60_000);
});

describe("POST /mcp authentication", () => {
  it("refuses a request without a token, and with a bad token, with 401", async () => {
    for (const headers of [{}, { authorization: "Bearer not-a-token" }] as Record<string, string>[]) {
      const res = await fetch(`${base}/mcp`, {
        method: "POST",
        headers: { ...headers, "content-type": "application/json", accept: "application/json, text/event-stream" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
      });
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toContain("Bearer");
    }
    await expect(mcpClient("not-a-token")).rejects.toThrow();
  });

  it("never lets user B reach user A's connection or monitored table", async () => {
    const a = await h.newUser();
    const b = await h.newUser();
    const target = await sqliteTarget(h.sqliteRoot);
    const connectionId = await addConnection(h, a.token, target.body);
    const table = await monitorTable(h, a.token, { connection_id: connectionId, table: "Artist" });
    const client = await mcpClient(b.token);
    expect(structured(await call(client, "list_connections")).connections).toEqual([]);
    for (const [name, args] of [
      ["run_query", { connection_id: connectionId, sql: "SELECT Name FROM Artist" }],
      ["describe_schema", { connection_id: connectionId }],
      ["ask", { connection_id: connectionId, question: "How many artists?" }],
      ["create_monitor", { connection_id: connectionId, table: "Album" }],
      ["table_health", { table_id: table.id }],
    ] as const) {
      const result = await call(client, name, args);
      expect(result.isError, name).toBe(true);
      expect(structured(result).code, name).toBe("not_found");
      expect(textOf(result), name).not.toContain("AC/DC");
    }
    await client.close();
  });
});

async function createKey(token: string, json: Record<string, unknown>) {
  const res = await h.call("POST", "/api/keys", { token, json: { name: "mcp client", ...json } });
  expect(res.status, res.text).toBe(201);
  return res.body as { id: number; key: string };
}

describe("POST /mcp with API keys", () => {
  const sql = "SELECT Name FROM Artist ORDER BY ArtistId LIMIT 1";
  /** The raw status of a tools/list with `key`: refusals of the credential are HTTP 401s, before MCP. */
  const statusWith = async (url: string, key: string) =>
    (
      await fetch(`${url}/mcp`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json", accept: "application/json, text/event-stream" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
      })
    ).status;
  const expectToolError = (result: CallToolResult, code: string, what: string) => {
    expect(result.isError, what).toBe(true);
    expect(structured(result).code, what).toBe(code);
    expect(textOf(result), what).not.toContain("AC/DC");
  };

  it("serves a key within its scopes and connections, and refuses the rest as tool errors", async () => {
    const a = await h.newUser();
    const allowed = await addConnection(h, a.token, (await sqliteTarget(h.sqliteRoot)).body);
    const other = await addConnection(h, a.token, (await sqliteTarget(h.sqliteRoot)).body);
    const { key } = await createKey(a.token, { scopes: ["query"], connection_ids: [allowed] });
    const client = await mcpClient(key);
    expect(textOf(await call(client, "run_query", { connection_id: allowed, sql }))).toContain("AC/DC");
    expect(structured(await call(client, "list_connections")).connections.map((c: { id: number }) => c.id)).toEqual([allowed]);
    expectToolError(await call(client, "run_query", { connection_id: other, sql }), "forbidden", "another connection");
    expectToolError(await call(client, "describe_schema", { connection_id: other }), "forbidden", "another connection's schema");
    for (const [name, args] of [
      ["ask", { connection_id: allowed, question: "How many artists?" }],
      ["list_alerts", {}],
      ["create_monitor", { connection_id: allowed, table: "Album" }],
    ] as const) {
      expectToolError(await call(client, name, args), "forbidden", `${name} without its scope`);
    }
    await client.close();
    // Monitoring without query: no custom SQL, whose value or dry-run refusal shows what it read.
    const monitoring = await mcpClient((await createKey(a.token, { scopes: ["monitoring:write"], connection_ids: [allowed] })).key);
    const sqlCheck = { kind: "custom_sql", name: "leak", sql: "SELECT Name FROM Artist WHERE ArtistId = 1", max: 0 };
    expectToolError(await call(monitoring, "create_monitor", { connection_id: allowed, table: "Artist", checks: [sqlCheck] }), "forbidden", "custom_sql without query");
    await monitoring.close();
  });

  it("offers each reachable connection's schema as a resource, and refuses the rest", async () => {
    const a = await h.newUser();
    const allowed = await addConnection(h, a.token, (await sqliteTarget(h.sqliteRoot)).body);
    const other = await addConnection(h, a.token, (await sqliteTarget(h.sqliteRoot)).body);
    const owner = await mcpClient(a.token);
    expect((await owner.listResources()).resources.map((r) => r.uri).sort()).toEqual([`pulse://connections/${allowed}/schema`, `pulse://connections/${other}/schema`].sort());
    const read = await owner.readResource({ uri: `pulse://connections/${other}/schema` });
    expect(read.contents).toEqual([expect.objectContaining({ uri: `pulse://connections/${other}/schema`, mimeType: "text/plain" })]);
    expect((read.contents[0] as { text: string }).text).toMatch(/^Dialect: sqlite\n[\s\S]*Artist\(/);
    await owner.close();

    const limited = await mcpClient((await createKey(a.token, { scopes: ["query"], connection_ids: [allowed] })).key);
    expect((await limited.listResources()).resources.map((r) => r.uri)).toEqual([`pulse://connections/${allowed}/schema`]);
    await expect(limited.readResource({ uri: `pulse://connections/${other}/schema` })).rejects.toThrow(/forbidden/);
    await expect(limited.readResource({ uri: "pulse://connections/99999999999/schema" })).rejects.toThrow(/positive integer/);
    // Not a URI at all: the client's to fix (invalid params), not an internal error.
    await expect(limited.readResource({ uri: "not a uri" })).rejects.toMatchObject({ code: -32602, message: expect.stringContaining("params.uri") });
    // Only the digits schemaUri writes: not another spelling of an id.
    for (const spelling of [`0x${allowed.toString(16)}`, `${allowed}.0`, `0${allowed}`]) {
      await expect(limited.readResource({ uri: `pulse://connections/${spelling}/schema` }), spelling).rejects.toThrow(/positive integer/);
    }
    await limited.close();

    // A key for monitoring only: its connections listed as GET /databases lists them, and no
    // schema resources (it may not query), rather than an error at the client's connect.
    const monitoring = await mcpClient((await createKey(a.token, { scopes: ["monitoring:read"], connection_ids: [allowed] })).key);
    expect((await monitoring.listResources()).resources).toEqual([]);
    expect(structured(await call(monitoring, "list_connections")).connections.map((c: { id: number }) => c.id)).toEqual([allowed]);
    await monitoring.close();

    const stranger = await mcpClient((await h.newUser()).token);
    expect((await stranger.listResources()).resources).toEqual([]);
    await expect(stranger.readResource({ uri: `pulse://connections/${allowed}/schema` })).rejects.toThrow(/not_found/);
    await stranger.close();
  });

  it("refuses user B's key on user A's connection", async () => {
    const a = await h.newUser();
    const b = await h.newUser();
    const connectionId = await addConnection(h, a.token, (await sqliteTarget(h.sqliteRoot)).body);
    const client = await mcpClient((await createKey(b.token, { scopes: ["query", "ask", "monitoring:read", "monitoring:write"] })).key);
    expect(structured(await call(client, "list_connections")).connections).toEqual([]);
    expectToolError(await call(client, "run_query", { connection_id: connectionId, sql }), "not_found", "user A's connection");
    await client.close();
  });

  it("refuses a key revoked on one instance at once on the other, and a key once it has expired", async () => {
    const a = await h.newUser();
    const connectionId = await addConnection(h, a.token, (await sqliteTarget(h.sqliteRoot)).body);
    const revoked = await createKey(a.token, { scopes: ["query"] });
    const onSecond = await mcpClient(revoked.key, { url: secondBase });
    expect(textOf(await call(onSecond, "run_query", { connection_id: connectionId, sql }))).toContain("AC/DC");
    expect((await h.call("DELETE", `/api/keys/${revoked.id}`, { token: a.token })).status).toBe(204);
    await expect.poll(() => statusWith(secondBase, revoked.key), { timeout: 2000 }).toBe(401);
    await expect(call(onSecond, "run_query", { connection_id: connectionId, sql })).rejects.toThrow();
    await onSecond.close();

    const expiring = await createKey(a.token, { scopes: ["query"], expires_at: new Date(Date.now() + 4000).toISOString() });
    const client = await mcpClient(expiring.key);
    expect(textOf(await call(client, "run_query", { connection_id: connectionId, sql }))).toContain("AC/DC");
    await new Promise((resolve) => setTimeout(resolve, 4100));
    expect(await statusWith(base, expiring.key)).toBe(401);
    await expect(call(client, "run_query", { connection_id: connectionId, sql })).rejects.toThrow();
    await client.close();
  });
});

describe("POST /mcp on two instances behind one Redis", () => {
  it("serves one client's calls spread across both instances", async () => {
    const user = await h.newUser();
    const target = await sqliteTarget(h.sqliteRoot);
    const connectionId = await addConnection(h, user.token, target.body);
    const hits = [0, 0];
    let turn = 0;
    // A round-robin load balancer in front of the two instances.
    const spread: typeof fetch = (input, init) => {
      const i = turn++ % 2;
      hits[i]!++;
      const url = new URL(input instanceof Request ? input.url : String(input));
      const to = new URL(i === 0 ? base : secondBase);
      url.host = to.host;
      return fetch(url, init);
    };
    const client = await mcpClient(user.token, { fetch: spread });
    for (let i = 0; i < 4; i++) {
      const result = await call(client, "run_query", { connection_id: connectionId, sql: "SELECT Name FROM Artist ORDER BY ArtistId LIMIT 1" });
      expect(result.isError).toBeFalsy();
      expect(structured(result).rows).toEqual([["AC/DC"]]);
    }
    expect((await client.listTools()).tools).toHaveLength(7);
    await client.close();
    expect(hits[0]).toBeGreaterThanOrEqual(3);
    expect(hits[1]).toBeGreaterThanOrEqual(3);
  });
});

/** A fingerprint of everything the corpus might change: rows, relations, sequence, files. */
async function hostileFixture(dialect: Dialect): Promise<{ body: Record<string, unknown>; checksum(): Promise<string> }> {
  if (dialect === "postgresql") {
    const db = await createPgDatabase("pulse_mcp_hostile");
    drops.push(() => db.drop());
    for (const sql of GUARD_FIXTURE.postgresql) await db.query(sql);
    return {
      body: { db_type: "postgresql", host: PG.host, port: PG.port, database_name: db.name, username: PG.user, db_password: "unused" },
      async checksum() {
        const [rows] = await db.query<{ c: string }>(`SELECT
          (SELECT coalesce(string_agg(id || ':' || coalesce(v, 'NULL'), ',' ORDER BY id), '') FROM guard_target) || '|' ||
          (SELECT string_agg(n.nspname || '.' || c.relname, ',' ORDER BY n.nspname, c.relname) FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')) || '|' ||
          (SELECT last_value || ':' || is_called FROM guard_seq) AS c`);
        return rows!.c;
      },
    };
  }
  if (dialect === "mysql") {
    const db = await createMariaDatabase("pulse_mcp_hostile");
    drops.push(() => db.drop());
    for (const sql of GUARD_FIXTURE.mysql) await db.query(sql);
    return {
      body: { db_type: "mysql", host: MARIADB.host, port: MARIADB.port, database_name: db.name, username: MARIADB.user },
      async checksum() {
        const rows = await db.query<{ c: string }>(`SELECT CONCAT(
          (SELECT COALESCE(GROUP_CONCAT(id, ':', COALESCE(v, 'NULL') ORDER BY id), '') FROM guard_target), '|',
          (SELECT COALESCE(GROUP_CONCAT(TABLE_NAME ORDER BY TABLE_NAME), '') FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE())) AS c`);
        return rows[0]!.c;
      },
    };
  }
  const name = `${uniqueName("hostile")}.sqlite`;
  const file = path.join(h.sqliteRoot, name);
  const setup = new Database(file);
  for (const sql of GUARD_FIXTURE.sqlite) setup.exec(sql);
  setup.close();
  return {
    body: { db_type: "sqlite", database_name: name },
    checksum: async () => createHash("sha256").update(readFileSync(file)).digest("hex"),
  };
}

describe.each(["postgresql", "mysql", "sqlite"] as const)("the hostile corpus through run_query on %s", (dialect) => {
  it("refuses every statement as a tool error with the guard's rule, and changes nothing", async () => {
    const fixture = await hostileFixture(dialect);
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, fixture.body);
    const client = await mcpClient(user.token);
    const before = await fixture.checksum();
    const entries = HOSTILE_CORPUS.filter((e) => e.dialect === dialect);
    expect(entries.length).toBeGreaterThan(40);
    const misses: string[] = [];
    for (const entry of entries) {
      const result = await call(client, "run_query", { connection_id: connectionId, sql: entry.sql });
      const out = structured(result);
      if (!result.isError || out?.code !== "sql_refused" || out.rule !== entry.rule) misses.push(`${entry.sql} -> ${textOf(result)}`);
    }
    expect(misses).toEqual([]);
    expect(await fixture.checksum()).toBe(before);
    await client.close();
  }, 180_000);
});

describe("health-aware results", () => {
  it("warns of an open alert on a table read, in run_query, POST /query and POST /ask", async () => {
    const user = await h.newConnectedUser();
    const [connection] = (await h.call("GET", "/databases", { token: user.token })).body;
    const connectionId = connection.id as number;
    const table = await monitorTable(h, user.token, {
      connection_id: connectionId,
      table: "Artist",
      checks: [{ kind: "custom_sql", name: "rows", sql: "SELECT count(*) FROM Artist", max: 0 }],
      alert: { open_after: 1 },
    });
    expect((await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token })).status).toBe(200);
    const expected = {
      table: "Artist",
      table_id: table.id,
      check: "custom_sql:rows",
      status: "open",
      since: expect.any(String),
      detail: expect.stringContaining("outside the limit"),
    };
    const artistSql = "SELECT a.Name, count(*) FROM Artist a JOIN Album al ON al.ArtistId = a.ArtistId GROUP BY a.Name LIMIT 2";

    const client = await mcpClient(user.token);
    const read = await call(client, "run_query", { connection_id: connectionId, sql: artistSql });
    expect(structured(read).health).toEqual([expect.objectContaining(expected)]);
    expect(textOf(read)).toMatch(/WARNING: Artist has an alert \(open\): custom_sql:rows failing since \S+/);
    const other = await call(client, "run_query", { connection_id: connectionId, sql: "SELECT count(*) FROM Album" });
    expect(structured(other).health).toEqual([]);
    expect(textOf(other)).not.toContain("WARNING");
    await client.close();

    const query = await h.call("POST", "/query", { token: user.token, json: { sql: artistSql } });
    expect(query.status).toBe(200);
    expect(query.body.health).toEqual([expect.objectContaining(expected)]);
    const album = await h.call("POST", "/query", { token: user.token, json: { sql: "SELECT count(*) FROM Album" } });
    expect(album.body.health).toEqual([]);

    replies.push({ toolCalls: [{ name: "run_query", args: { sql: "SELECT count(*) AS n FROM Artist" } }] });
    replies.push({ content: "There are 275 artists." });
    const ask = await h.call("POST", "/ask", { token: user.token, json: { question: "How many artists?" } });
    expect(ask.status).toBe(200);
    expect(ask.body.health).toEqual([expect.objectContaining(expected)]);
    // The model was warned with the rows, so that its answer can say the data may be wrong.
    expect(lastToolResult(fake.requests.at(-1)!)).toMatch(/275[\s\S]*\nWARNING: Artist has an alert \(open\): custom_sql:rows failing since \S+/);
  });

  it("reads a user's open alerts once per HEALTH_CACHE_MS, not at every statement: an alert opened meanwhile shows that much later", async () => {
    const user = await h.newConnectedUser();
    const table = await monitorTable(h, user.token, {
      table: "Artist",
      checks: [{ kind: "custom_sql", name: "rows", sql: "SELECT count(*) FROM Artist", max: 0 }],
      alert: { open_after: 1 },
      connection_id: (await h.call("GET", "/databases", { token: user.token })).body[0].id,
    });
    const health = async () => (await h.call("POST", "/query", { token: user.token, json: { sql: "SELECT count(*) FROM Artist" } })).body.health;
    const read = Date.now();
    expect(await health()).toEqual([]);
    expect((await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token })).status).toBe(200);
    // The statements of a busy user cost no read of the store each (the store was read once,
    // before the alert opened)...
    const statements = await Promise.all(Array.from({ length: 5 }, health));
    if (Date.now() - read < HEALTH_CACHE_MS) expect(statements).toEqual(Array(5).fill([]));
    // ...and the alert shows once the cache is that old.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, read + HEALTH_CACHE_MS + 100 - Date.now())));
    expect(await health()).toEqual([expect.objectContaining({ table: "Artist", table_id: table.id, status: "open" })]);
  });

  it("warns of an alert found through another of the user's connections to the same database, not through a copy", async () => {
    const user = await h.newConnectedUser();
    const [monitoring] = (await h.call("GET", "/databases", { token: user.token })).body;
    const table = await monitorTable(h, user.token, {
      connection_id: monitoring.id,
      table: "Artist",
      checks: [{ kind: "custom_sql", name: "rows", sql: "SELECT count(*) FROM Artist", max: 0 }],
      alert: { open_after: 1 },
    });
    expect((await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token })).status).toBe(200);
    // The same file, named another way: a reading connection beside the monitoring one.
    const reading = await addConnection(h, user.token, { db_type: "sqlite", database_name: `./${monitoring.database_name}` });
    const copy = await addConnection(h, user.token, (await sqliteTarget(h.sqliteRoot)).body);
    const stranger = await h.newUser();
    const theirs = await addConnection(h, stranger.token, { db_type: "sqlite", database_name: monitoring.database_name });
    const sql = "SELECT count(*) FROM Artist";
    const healthVia = async (token: string, connectionId: number) => {
      const res = await h.call("POST", "/query", { token, json: { sql, connection_id: connectionId } });
      expect(res.status).toBe(200);
      return res.body.health;
    };

    const alerted = [expect.objectContaining({ table: "Artist", table_id: table.id, check: "custom_sql:rows", status: "open" })];
    expect(await healthVia(user.token, reading)).toEqual(alerted);
    expect(await healthVia(user.token, copy)).toEqual([]);
    // Another user reading the same file is not told of this user's monitoring.
    expect(await healthVia(stranger.token, theirs)).toEqual([]);
    // Nor is a key of this user's limited to the reading connection: the alert, its check and
    // what it measured are the monitoring connection's (which may read more than this one).
    const readingOnly = await createKey(user.token, { scopes: ["query"], connection_ids: [reading] });
    expect(await healthVia(readingOnly.key, reading)).toEqual([]);
    const both = await createKey(user.token, { scopes: ["query"], connection_ids: [reading, monitoring.id] });
    expect(await healthVia(both.key, reading)).toEqual(alerted);
    const client = await mcpClient(readingOnly.key);
    expect(structured(await call(client, "run_query", { connection_id: reading, sql })).health).toEqual([]);
    await client.close();
  });
});
