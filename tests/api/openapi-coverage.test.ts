// The OpenAPI document and the README's endpoint table say what the router serves: every route
// is a documented operation with a summary, its errors and an example body, and the README's
// table lists exactly the documented operations. A route added, hidden or left without a
// summary, or a table row gone stale, fails here.

import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { PUBLIC_ROUTES } from "../../src/app.js";
import { createHarness, type Harness } from "../support/harness.js";

interface Operation {
  summary?: string;
  responses?: Record<string, unknown>;
  requestBody?: { content: Record<string, { schema?: unknown; example?: unknown; examples?: unknown }> };
}
interface Document {
  paths: Record<string, Record<string, Operation>>;
  components?: { schemas?: Record<string, unknown> };
}

/** Served, but not API operations: the document itself and the page that renders it. */
const isDocsRoute = (path: string) => path === "/openapi.json" || path === "/docs" || path === "/redoc" || path.startsWith("/docs/");

let h: Harness;
let doc: Document;
beforeAll(async () => {
  h = await createHarness({ store: "pglite" });
  doc = (await h.call("GET", "/openapi.json")).body;
});
afterAll(async () => {
  await h?.close();
});

const operations = () =>
  Object.entries(doc.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => ({ key: `${method.toUpperCase()} ${path}`, op })));
const documented = () => new Set(operations().map((o) => o.key));

/** Does the schema (following $refs into the components) carry an example anywhere? */
function hasExample(schema: unknown, seen = new Set<unknown>()): boolean {
  if (!schema || typeof schema !== "object" || seen.has(schema)) return false;
  seen.add(schema);
  const node = schema as Record<string, unknown>;
  if ("example" in node || "examples" in node) return true;
  if (typeof node.$ref === "string") return hasExample(doc.components?.schemas?.[node.$ref.replace("#/components/schemas/", "")], seen);
  return Object.values(node).some((child) => hasExample(child, seen));
}

/** Where an example disagrees with its schema (resolving $refs): a required field missing, a
 * field the schema does not declare, a wrong JSON type. Descends objects and arrays. */
function exampleProblems(schema: unknown, example: unknown, at: string): string[] {
  if (!schema || typeof schema !== "object") return [];
  const node = schema as Record<string, unknown>;
  if (typeof node.$ref === "string") return exampleProblems(doc.components?.schemas?.[node.$ref.replace("#/components/schemas/", "")], example, at);
  if (node.type === "array" && Array.isArray(example)) return example.flatMap((item, i) => exampleProblems(node.items, item, `${at}[${i}]`));
  if (node.type === "array") return [`${at}: not an array`];
  if (node.type !== "object" || !node.properties) return [];
  if (!example || typeof example !== "object" || Array.isArray(example)) return [`${at}: not an object`];
  const properties = node.properties as Record<string, unknown>;
  const given = example as Record<string, unknown>;
  const problems = ((node.required as string[] | undefined) ?? []).filter((key) => !(key in given)).map((key) => `${at}.${key}: missing`);
  for (const [key, value] of Object.entries(given)) {
    if (key in properties) problems.push(...exampleProblems(properties[key], value, `${at}.${key}`));
    else if (!node.additionalProperties) problems.push(`${at}.${key}: not in the schema`);
  }
  return problems;
}

/** The example shown for a response or body: the media type's own, else its schema's. */
function exampleOf(media: { schema?: unknown; example?: unknown }): unknown {
  if (media.example !== undefined) return media.example;
  const schema = media.schema as Record<string, unknown> | undefined;
  const target = typeof schema?.$ref === "string" ? doc.components?.schemas?.[schema.$ref.replace("#/components/schemas/", "")] : schema;
  return (target as Record<string, unknown> | undefined)?.example;
}

describe("GET /openapi.json against the router", () => {
  const routes = () => {
    // Middleware is registered as ALL; hono writes a path parameter ":id" or ":id{pattern}".
    const keys = h.app.routes
      .filter((r) => r.method !== "ALL" && !isDocsRoute(r.path))
      .map((r) => `${r.method} ${r.path.replace(/:(\w+)(\{[^}]*\})?/g, "{$1}")}`);
    return [...new Set(keys)];
  };

  it("documents every route (a trailing-slash twin, such as POST /users for POST /users/, counts as its operation)", () => {
    expect(routes().length).toBeGreaterThan(45);
    const ops = documented();
    const undocumented = routes().filter((key) => !ops.has(key) && !ops.has(`${key}/`) && !ops.has(key.replace(/\/$/, "")));
    expect(undocumented).toEqual([]);
  });

  it("documents no operation the router does not serve", () => {
    const served = new Set(routes());
    expect(operations().filter(({ key }) => !served.has(key)).map(({ key }) => key)).toEqual([]);
  });

  it("gives every operation a summary and its error responses (401 on every protected one)", () => {
    const isPublic = (key: string) => PUBLIC_ROUTES.some((r) => `${r.method} ${r.path}` === key);
    const problems: string[] = [];
    for (const { key, op } of operations()) {
      if (!op.summary?.trim()) problems.push(`${key}: no summary`);
      const statuses = Object.keys(op.responses ?? {}).map(Number);
      // The health checks take no input and no token: their only error is 503.
      if (!statuses.some((s) => s >= 400)) problems.push(`${key}: no error response`);
      if (!isPublic(key) && !statuses.includes(401)) problems.push(`${key}: no 401`);
      if (!isPublic(key) && !statuses.some((s) => s >= 400 && s < 500 && s !== 401)) problems.push(`${key}: no 4xx besides 401`);
    }
    expect(problems).toEqual([]);
  });

  it("documents the body reader's refusals (400, 413, 415) on every operation that takes a body", () => {
    const missing = operations()
      .filter(({ op }) => op.requestBody)
      .flatMap(({ key, op }) => ["400", "413", "415"].filter((status) => !op.responses?.[status]).map((status) => `${key}: no ${status}`));
    expect(missing).toEqual([]);
  });

  it("documents 503 wherever Pulse's state may be out of reach, and 502 (connection_lost) on the query routes", () => {
    const ops = new Map(operations().map(({ key, op }) => [key, op]));
    expect([...ops].filter(([key, op]) => key !== "GET /metrics" && !op.responses?.["503"]).map(([key]) => key)).toEqual([]);
    const queries = ["POST /query", "POST /api/v1/query", "POST /databases/{id}/query", "POST /api/v1/instances/{id}/query"];
    expect(queries.filter((key) => !ops.get(key)?.responses?.["502"])).toEqual([]);
  });

  it("documents the 429 of the connection-test limit where a route connects to settings", () => {
    const connecting = ["POST /databases/add_db_connection", "PUT /databases/{id}", "POST /databases/{id}/test", "POST /api/v1/instances", "PUT /api/v1/instances/{id}", "POST /api/v1/instances/{id}/test"];
    const ops = new Map(operations().map(({ key, op }) => [key, op]));
    expect(connecting.filter((key) => !ops.get(key)?.responses?.["429"])).toEqual([]);
  });

  it("says what each `limit` query parameter is when it is left out: a default, or in words", () => {
    const silent = operations().filter(({ op }) => {
      const limit = (op as { parameters?: { name: string; in: string; schema?: { default?: unknown }; description?: string }[] }).parameters?.find((p) => p.in === "query" && p.name === "limit");
      return limit && limit.schema?.default === undefined && !/without it/i.test(limit.description ?? "");
    });
    expect(silent.map(({ key }) => key)).toEqual([]);
  });

  it("shows an example of every JSON request body", () => {
    const missing = operations()
      .filter(({ op }) => op.requestBody?.content["application/json"])
      .filter(({ op }) => !hasExample(op.requestBody!.content["application/json"]))
      .map(({ key }) => key);
    expect(missing).toEqual([]);
  });

  it("shows an example of every success response, and each agrees with its schema", () => {
    const missing: string[] = [];
    const wrong: string[] = [];
    for (const { key, op } of operations()) {
      for (const [status, response] of Object.entries(op.responses ?? {})) {
        if (Number(status) >= 300) continue;
        for (const [type, media] of Object.entries((response as { content?: Record<string, { schema?: unknown; example?: unknown }> }).content ?? {})) {
          if (!hasExample(media)) missing.push(`${key} ${status} ${type}`);
          const example = exampleOf(media);
          if (example !== undefined) wrong.push(...exampleProblems(media.schema, example, `${key} ${status}`));
        }
      }
    }
    expect(missing).toEqual([]);
    expect(wrong).toEqual([]);
  });
});

/**
 * The README's "## Endpoints" table, read as operations. Each backticked `METHOD /path` in a row
 * is an operation; `GET/PUT/DELETE /path` is one per method; a backticked bare `/segment` right
 * after an operation in the same row is its sibling (the last segment replaced, same method):
 * `POST /api/alerts/{id}/ack`, `/mute` is also `POST /api/alerts/{id}/mute`.
 */
function readmeOperations(): string[] {
  const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
  const section = readme.split(/^## Endpoints$/m)[1]!.split(/^## /m)[0]!;
  const rows = section.split("\n").filter((line) => line.startsWith("| `"));
  const found: string[] = [];
  for (const row of rows) {
    const cell = row.split(" | ")[0]!;
    let last: { methods: string[]; path: string } | undefined;
    for (const [, span] of cell.matchAll(/`([^`]+)`/g)) {
      const full = /^([A-Z]+(?:\/[A-Z]+)*) (\/\S*)$/.exec(span!);
      if (full) last = { methods: full[1]!.split("/"), path: full[2]! };
      else if (last && /^\/[\w{}-]+$/.test(span!)) last = { methods: last.methods, path: last.path.replace(/\/[^/]+$/, span!) };
      else throw new Error(`README endpoint table: cannot read \`${span}\` in: ${row}`);
      for (const method of last.methods) found.push(`${method} ${last.path}`);
    }
  }
  return found;
}

describe("README's endpoint table against GET /openapi.json", () => {
  it("lists every documented operation", () => {
    const listed = new Set(readmeOperations());
    expect([...documented()].filter((key) => !listed.has(key))).toEqual([]);
  });

  it("lists nothing the document does not (but the document and the docs page themselves)", () => {
    const ops = documented();
    expect(readmeOperations().filter((key) => !ops.has(key) && !isDocsRoute(key.split(" ")[1]!))).toEqual([]);
  });
});
