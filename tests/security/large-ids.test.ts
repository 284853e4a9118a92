// Threat: ids past PostgreSQL's integer range made the store query fail (500, and a stack in
// the log). Ids are Pulse's own PostgreSQL integers: one past 2^31 - 1 is invalid input that
// names the field (422), and invalid arguments naming it over MCP.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";

const TOO_BIG = 2 ** 31;

describe("ids over PostgreSQL's integer range", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness();
  });
  afterAll(async () => h?.close());

  it.each([
    ["POST /query", "/query", { sql: "SELECT 1", connection_id: TOO_BIG }, "body.connection_id"],
    ["POST /api/tables", "/api/tables", { connection_id: TOO_BIG, table: "events" }, "body.connection_id"],
    ["POST /databases/add_db_connection", "/databases/add_db_connection", { db_type: "sqlite", database_name: "x.sqlite", owner_id: TOO_BIG }, "body.owner_id"],
    ["POST /ask", "/ask", { question: "How many?", session_id: "s", user_id: TOO_BIG }, "body.user_id"],
  ])("%s answers 422 naming the field", async (_, route, json, field) => {
    const user = await h.newUser();
    const res = await h.call("POST", route, { token: user.token, json });
    expect(res.status, res.text).toBe(422);
    expect(res.body.errors.map((e: { path: string }) => e.path)).toContain(field);
  });

  it.each([
    ["run_query", { connection_id: TOO_BIG, sql: "SELECT 1" }, "connection_id"],
    ["table_health", { table_id: TOO_BIG }, "table_id"],
    ["create_monitor", { connection_id: TOO_BIG, table: "events" }, "connection_id"],
  ])("MCP %s answers invalid arguments naming the field, not an internal error", async (tool, args, field) => {
    const user = await h.newUser();
    const res = await h.call("POST", "/mcp", {
      token: user.token,
      headers: { accept: "application/json, text/event-stream" },
      json: { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: tool, arguments: args } },
    });
    expect(res.status).toBe(200);
    expect(res.body.result.isError).toBe(true);
    const text = res.body.result.content[0].text as string;
    expect(text).toContain(field);
    expect(text).not.toContain("internal_error");
  });

  it("GET /databases/{id} answers 422 for a path id over the range", async () => {
    const user = await h.newUser();
    const res = await h.call("GET", `/databases/${TOO_BIG}`, { token: user.token });
    expect(res.status).toBe(422);
  });
});
