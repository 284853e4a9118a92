// Threat: a NUL character (\u0000) in any text field reached the metadata store, which cannot
// hold one in text: the write failed as a 500, and its error, logged with the statement's bound
// values, put a new user's bcrypt hash or an API key's digest in the log. Every JSON or form
// body now refuses it with a 422 naming the field (an MCP tool, with a tool error naming its
// argument), and a store error never logs bound values.
// Half of a UTF-16 surrogate pair alone is refused the same way: jsonb cannot hold one.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";

const NUL = "a\u0000b";

describe("NUL characters in text fields", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness();
  });
  afterAll(async () => h?.close());

  it.each([
    ["POST /users/ (no token)", "POST", "/users/", () => ({ name: NUL, email: `n${Date.now()}@example.com`, password: "long enough password" }), "body.name"],
    ["POST /login (no token)", "POST", "/login", () => ({ username: `${NUL}@example.com`, password: "long enough password" }), "body.username"],
    ["POST /api/keys", "POST", "/api/keys", () => ({ name: NUL, scopes: ["query"] }), "body.name"],
    ["POST /api/channels", "POST", "/api/channels", () => ({ name: NUL, kind: "webhook", url: "https://hooks.example.com/x" }), "body.name"],
    ["POST /query", "POST", "/query", () => ({ sql: `SELECT '${NUL}'` }), "body.sql"],
  ])("%s answers 422 naming the field, and logs no error", async (_, method, route, json, field) => {
    const user = await h.newConnectedUser();
    const before = h.logs.length;
    const res = await h.call(method, route, { token: route === "/users/" || route === "/login" ? undefined : user.token, json: json() });
    expect(res.status, res.text).toBe(422);
    expect(res.body.errors).toContainEqual({ path: field, message: expect.stringContaining("NUL") });
    expect(h.logs.slice(before).join("")).not.toContain('"level":50');
  });

  it("answers a tool error naming the argument for one in an MCP tool's arguments: what the client's model reads, where a 422 would be a transport failure", async () => {
    const user = await h.newConnectedUser();
    const before = h.logs.length;
    const res = await h.call("POST", "/mcp", {
      token: user.token,
      headers: { accept: "application/json, text/event-stream" },
      json: { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "run_query", arguments: { connection_id: 1, sql: `SELECT '${NUL}'` } } },
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ jsonrpc: "2.0", id: 1, result: { isError: true, content: [{ type: "text", text: expect.stringMatching(/^invalid_input: Invalid input: arguments\.sql: .*NUL/) }] } });
    expect(h.logs.slice(before).join("")).not.toContain('"level":50');
  });

  it("answers 422 for half of a surrogate pair, which the store's JSON cannot hold, and takes a whole one", async () => {
    const user = await h.newUser();
    const lone = "\ud800";
    const check = { kind: "custom_sql", name: "x", sql: `SELECT 0 /* ${lone} */`, max: 0 };
    const table = await h.call("POST", "/api/tables", { token: user.token, json: { connection_id: 1, table: "events", checks: [check] } });
    expect(table.status, table.text).toBe(422);
    expect(table.body.errors).toContainEqual({ path: "body.checks.0.sql", message: expect.stringContaining("surrogate") });
    expect((await h.call("POST", "/api/keys", { token: user.token, json: { name: `a${lone}b`, scopes: ["query"] } })).status).toBe(422);
    expect((await h.call("POST", "/api/keys", { token: user.token, json: { name: "key 😀", scopes: ["query"] } })).status).toBe(201);
  });

  it("logs a failed store statement without its bound values", async () => {
    const secret = `bound-value-${Date.now()}`;
    const before = h.logs.length;
    const { sql } = await import("drizzle-orm");
    // Fails on its own (division by zero), with a bound value that PostgreSQL's message does not quote.
    const err = await h.deps.store.db.execute(sql`SELECT ${secret}::text, 1 / 0`).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    h.deps.logger.error({ err }, "a store statement failed");
    const logged = h.logs.slice(before).join("");
    expect(logged).toContain("Failed query: SELECT $1::text, 1 / 0");
    expect(logged).not.toContain(secret);
  });
});
