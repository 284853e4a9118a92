// Threat: a misspelt field is dropped and the request runs on a default, e.g.
// `POST /api/v1/query {"instance_id": 5}` ran on the session's database instead of the one
// meant. Every request body refuses fields it does not declare, with a 422 naming them; a
// route that takes no body refuses one with fields the same way, rather than drop it.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";
import { sqliteTarget } from "../support/targets.js";

type Schema = { type?: string; properties?: Record<string, Schema>; additionalProperties?: unknown; items?: Schema; $ref?: string; oneOf?: Schema[]; anyOf?: Schema[]; allOf?: Schema[] };
type Operation = { requestBody?: { content: Record<string, { schema: Schema }> }; parameters?: { in: string }[] };
type OpenApi = { paths: Record<string, Record<string, Operation>>; components: { schemas: Record<string, Schema> } };

let h: Harness;
let doc: OpenApi;

beforeAll(async () => {
  h = await createHarness();
  doc = (await h.call("GET", "/openapi.json")).body;
});
afterAll(async () => h?.close());

const operationsWithBodies = () =>
  Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.entries(ops).flatMap(([method, op]) =>
      Object.entries(op.requestBody?.content ?? {}).map(([type, { schema }]) => ({ method: method.toUpperCase(), path, type, schema })),
    ),
  );

/** Every object schema reachable from `schema` whose unknown fields pass, by where it is. */
function openObjects(schema: Schema, at: string, seen = new Set<string>()): string[] {
  if (schema.$ref) {
    const name = schema.$ref.split("/").pop()!;
    if (seen.has(name)) return [];
    seen.add(name);
    return openObjects(doc.components.schemas[name]!, `${at}(${name})`, seen);
  }
  const open = schema.type === "object" && schema.additionalProperties !== false ? [at] : [];
  const nested = [
    ...Object.entries(schema.properties ?? {}).map(([key, s]) => openObjects(s, `${at}.${key}`, seen)),
    ...(schema.items ? [openObjects(schema.items, `${at}[]`, seen)] : []),
    ...[...(schema.oneOf ?? []), ...(schema.anyOf ?? []), ...(schema.allOf ?? [])].map((s, i) => openObjects(s, `${at}|${i}`, seen)),
  ];
  return [...open, ...nested.flat()];
}

describe("every documented request body", () => {
  it("covers the routes that take a body", () => {
    expect(operationsWithBodies().length).toBeGreaterThanOrEqual(10);
  });

  it("answers 422 naming an unknown field", async () => {
    const user = await h.newUser();
    for (const { method, path, type } of operationsWithBodies()) {
      const url = path.replace(/\{[^}]+\}/g, "1");
      const init =
        type === "application/x-www-form-urlencoded"
          ? { form: { pulse_unknown_field: "1" } }
          : { json: { pulse_unknown_field: 1 }, headers: { "content-type": type } };
      const res = await h.call(method, url, { token: user.token, ...init });
      const label = `${method} ${path} (${type}) -> ${res.status} ${res.text.slice(0, 300)}`;
      expect(res.status, label).toBe(422);
      expect(res.body.errors, label).toContainEqual({ path: "body.pulse_unknown_field", message: "unknown field" });
    }
  });

  it("documents every object in a body, nested ones too, as refusing unknown fields", () => {
    const open = operationsWithBodies().flatMap(({ method, path, type, schema }) => openObjects(schema, `${method} ${path} ${type} body`));
    // MCP's `params` are open by the protocol (`_meta`, and each tool's arguments, which the
    // tool's own input schema checks: tests/api/mcp.test.ts); the envelope around them is strict.
    expect(open).toEqual(["POST /mcp application/json body(McpRequest).params"]);
  });
});

const bodylessOperations = () =>
  Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.entries(ops)
      .filter(([method, op]) => ["post", "put", "patch", "delete"].includes(method) && !op.requestBody)
      .map(([method]) => ({ method: method.toUpperCase(), path })),
  );

describe("every documented POST, PUT, PATCH and DELETE that takes no body", () => {
  it("covers them all", () => {
    expect(bodylessOperations().length).toBeGreaterThanOrEqual(16);
  });

  it("answers 422 naming a field sent anyway, and does nothing", async () => {
    const user = await h.newConnectedUser();
    for (const { method, path } of bodylessOperations()) {
      const res = await h.call(method, path.replace(/\{[^}]+\}/g, "1"), { token: user.token, json: { pulse_unknown_field: 1 } });
      const label = `${method} ${path} -> ${res.status} ${res.text.slice(0, 300)}`;
      expect(res.status, label).toBe(422);
      expect(res.body.errors, label).toContainEqual({ path: "body.pulse_unknown_field", message: "unknown field" });
    }
    // Neither POST /logout nor disconnect-session ran.
    const status = await h.call("GET", "/databases/session-status", { token: user.token });
    expect(status.status).toBe(200);
    expect(status.body.database_connected).toBe(true);
  });

  it("takes no body, an empty one under a JSON media type, or {}", async () => {
    const user = await h.newUser();
    for (const init of [{}, { body: "", headers: { "content-type": "application/json" } }, { json: {} }]) {
      const res = await h.call("DELETE", "/api/keys/999999", { token: user.token, ...init });
      expect(res.status, JSON.stringify(init)).toBe(404);
    }
  });

  it("refuses a body that is not a JSON object as other routes do", async () => {
    const user = await h.newUser();
    const refused = async (init: { body: string; headers?: Record<string, string> }) =>
      (await h.call("POST", "/databases/1/test", { token: user.token, ...init })).status;
    expect(await refused({ body: "[]", headers: { "content-type": "application/json" } })).toBe(422);
    expect(await refused({ body: "{", headers: { "content-type": "application/json" } })).toBe(400);
    expect(await refused({ body: "session_id=x" })).toBe(415);
  });
});

describe("every documented route that declares no query parameters", () => {
  const queryless = () =>
    Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.entries(ops)
        .filter(([, op]) => !(op.parameters ?? []).some((p) => p.in === "query"))
        // Probes a load balancer or scraper may decorate with a cache-busting parameter.
        .filter(([method]) => !(method === "get" && ["/health", "/api/health", "/metrics"].includes(path)))
        .map(([method]) => ({ method: method.toUpperCase(), path })),
    );

  it("answers 422 naming a parameter sent anyway, and does nothing", async () => {
    const user = await h.newUser();
    expect(queryless().length).toBeGreaterThanOrEqual(40);
    for (const { method, path } of queryless()) {
      const res = await h.call(method, `${path.replace(/\{[^}]+\}/g, "1")}?pulse_unknown_param=1`, { token: user.token });
      const label = `${method} ${path} -> ${res.status} ${res.text.slice(0, 300)}`;
      expect(res.status, label).toBe(422);
      expect(res.body.errors, label).toContainEqual({ path: "query.pulse_unknown_param", message: "unknown field" });
    }
    // POST /logout did not run.
    expect((await h.call("GET", "/databases", { token: user.token })).status).toBe(200);
  });

  it("holds a route's twin without its trailing slash to the same (POST /users)", async () => {
    const json = { name: "Twin", email: `twin-${Date.now()}@example.com`, password: "correct horse battery" };
    const res = await h.call("POST", "/users?pulse_unknown_param=1", { json });
    expect(res.status).toBe(422);
    expect(res.body.errors).toContainEqual({ path: "query.pulse_unknown_param", message: "unknown field" });
    expect((await h.call("POST", "/users", { json })).status).toBe(201);
  });

  it("lets health checks and scrapes carry a query string (a cache-busting ?_=...)", async () => {
    expect((await h.call("GET", "/health?_=1733400000")).status).toBe(200);
  });

  it("takes a bare ? as no query string", async () => {
    const user = await h.newUser();
    expect((await h.call("GET", "/databases?", { token: user.token })).status).toBe(200);
  });
});

describe("the cases that bit", () => {
  it("refuses disconnect-session naming a session instead of closing the caller's own", async () => {
    const user = await h.newConnectedUser();
    const other = await h.newConnectedUser();
    const res = await h.call("POST", "/databases/disconnect-session", { token: user.token, json: { session_id: other.sessionId } });
    expect(res.status).toBe(422);
    expect(res.body.detail).toBe("Invalid input: body.session_id: unknown field");
    for (const who of [user, other]) expect((await h.call("GET", "/databases/session-status", { token: who.token })).body.database_connected).toBe(true);
  });

  it("refuses POST /api/v1/query with a misspelt field instead of running on the session's database", async () => {
    const user = await h.newConnectedUser();
    const res = await h.call("POST", "/api/v1/query", { token: user.token, json: { instance_id: 5, sql: "SELECT 1 AS one" } });
    expect(res.status).toBe(422);
    expect(res.body).toMatchObject({ status: "error", code: "invalid_input", detail: "Invalid input: body.instance_id: unknown field" });
    // The same body without the typo runs: the 422 was the field alone.
    expect((await h.call("POST", "/api/v1/query", { token: user.token, json: { sql: "SELECT 1 AS one" } })).status).toBe(200);
  });

  it("refuses POST /query naming both a session and a connection instead of dropping the session", async () => {
    const user = await h.newConnectedUser();
    const [connection] = (await h.call("GET", "/databases", { token: user.token })).body;
    const res = await h.call("POST", "/query", { token: user.token, json: { sql: "SELECT 1", session_id: "no-such-session", connection_id: connection.id } });
    expect(res.status).toBe(422);
    expect(res.body.errors).toEqual([{ path: "body.session_id", message: expect.stringMatching(/^send session_id or connection_id, not both/) }]);
    // Either alone runs.
    expect((await h.call("POST", "/query", { token: user.token, json: { sql: "SELECT 1", connection_id: connection.id } })).status).toBe(200);
    expect((await h.call("POST", "/query", { token: user.token, json: { sql: "SELECT 1", session_id: user.sessionId } })).status).toBe(200);
  });

  it("names an unknown field inside a monitoring check", async () => {
    const user = await h.newUser();
    const target = await sqliteTarget(h.sqliteRoot);
    const added = await h.call("POST", "/databases/add_db_connection", { token: user.token, json: target.body });
    const res = await h.call("POST", "/api/tables", {
      token: user.token,
      json: { connection_id: added.body.db_connection.id, table: "Track", checks: [{ kind: "volume", min_rows: 1, max_row: 10 }] },
    });
    expect(res.status).toBe(422);
    expect(res.body.errors).toContainEqual({ path: "body.checks.0.max_row", message: "unknown field" });
  });

  it("refuses an unknown field in the login form, but takes the rest of the OAuth2 password form", async () => {
    const user = await h.newUser();
    const extra = await h.call("POST", "/login", { form: { username: user.email, password: user.password, remember_me: "1" } });
    expect(extra.status).toBe(422);
    expect(extra.body.errors).toContainEqual({ path: "body.remember_me", message: "unknown field" });
    const oauth2 = { username: user.email, password: user.password, grant_type: "password", scope: "", client_id: "", client_secret: "" };
    expect((await h.call("POST", "/login", { form: oauth2 })).status).toBe(200);
    // As FastAPI's OAuth2PasswordRequestForm clients send it when not set: empty.
    expect((await h.call("POST", "/login", { form: { ...oauth2, grant_type: "" } })).status).toBe(200);
    expect((await h.call("POST", "/login", { form: { ...oauth2, grant_type: "client_credentials" } })).status).toBe(422);
  });

  it("still takes the bodies the seeds document", async () => {
    const user = await h.newConnectedUser();
    const target = await sqliteTarget(h.sqliteRoot);
    const seed004 = await h.call("POST", "/databases/add_db_connection", { token: user.token, json: { ...target.body, owner_id: user.id } });
    expect(seed004.status).toBe(201);
    const id = seed004.body.db_connection.id;
    const seed000 = await h.call("POST", "/api/v1/instances", {
      token: user.token,
      json: { name: "My SQLite DB", db_type: "sqlite", database: target.body.database_name },
    });
    expect(seed000.status).toBe(201);
    expect((await h.call("PUT", `/api/v1/instances/${seed000.body.id}`, { token: user.token, json: { name: "Updated DB Name" } })).status).toBe(200);
    expect((await h.call("POST", "/api/v1/query", { token: user.token, json: { connection_id: id, sql: "SELECT 1" } })).status).toBe(200);
    expect((await h.call("POST", `/api/v1/instances/${id}/query`, { token: user.token, json: { sql: "SELECT COUNT(*) FROM Track" } })).status).toBe(200);
  });
});
