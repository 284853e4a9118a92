// Threat: a route served without a token because nobody listed it as protected. Every request
// needs a valid token unless it is on the one public list (src/app.ts); this walks every route
// the app registered and every operation its OpenAPI document describes, so a route added
// anywhere, or a path added to the public list, fails here until this list agrees.

import { createRequire } from "node:module";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { PUBLIC_ROUTES } from "../../src/app.js";
import { createHarness, type Harness } from "../support/harness.js";

/** The docs page's script and stylesheet, under the version of swagger-ui-dist that ships them. */
const { version: docsAssetsVersion } = createRequire(import.meta.url)("swagger-ui-dist/package.json") as { version: string };
const PUBLIC = new Set([
  "GET /health",
  "GET /api/health",
  "POST /users/",
  "POST /users",
  "POST /login",
  "GET /openapi.json",
  "GET /docs",
  "GET /redoc",
  "GET /docs/",
  "GET /metrics",
  `GET /docs/assets/${docsAssetsVersion}/swagger-ui-bundle.js`,
  `GET /docs/assets/${docsAssetsVersion}/swagger-ui.css`,
]);

const FORGED = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIiwic2lkIjoieCJ9.c2lnbmF0dXJl";

let h: Harness;
beforeAll(async () => {
  h = await createHarness({ store: "pglite" });
});
afterAll(async () => {
  await h?.close();
});

/** A request to `method path` without a token (or with `token`), with a JSON body where one
 * may be sent: the refusal must come before any validation. */
const send = (method: string, path: string, token?: string) =>
  h.call(method, path, { token, json: method === "GET" || method === "HEAD" ? undefined : {} });

function expectGate(res: { status: number; body: any }, key: string) {
  if (PUBLIC.has(key)) {
    expect(res.status, key).not.toBe(401);
  } else {
    expect(res.status, key).toBe(401);
    expect(res.body?.code, key).toBe("unauthorized");
  }
}

describe("the public list", () => {
  it("is exactly the routes meant to be public", () => {
    expect(new Set(PUBLIC_ROUTES.map((r) => `${r.method} ${r.path}`))).toEqual(PUBLIC);
  });
});

describe("every registered route", () => {
  const routes = () => {
    // Middleware is registered as ALL; every handler has its method.
    const keys = h.app.routes.filter((r) => r.method !== "ALL").map((r) => `${r.method} ${r.path}`);
    return [...new Set(keys)];
  };

  it("covers the whole app", () => {
    expect(routes().length).toBeGreaterThan(45);
    for (const key of PUBLIC) expect(routes()).toContain(key);
  });

  it("answers 401 without a token, or with a forged one, except on the public list", async () => {
    for (const key of routes()) {
      const [method, template] = key.split(" ") as [string, string];
      // hono's params: ":id", or ":name{pattern}".
      const path = template.replace(/:\w+(\{[^}]*\})?/g, "1");
      expectGate(await send(method, path), key);
      if (!PUBLIC.has(key)) expectGate(await send(method, path, FORGED), key);
    }
  });
});

describe("every operation in the OpenAPI document", () => {
  let doc: { security?: unknown; paths: Record<string, Record<string, { security?: unknown[] }>> };
  beforeAll(async () => {
    doc = (await h.call("GET", "/openapi.json")).body;
  });

  const operations = () =>
    Object.entries(doc.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => ({ method: method.toUpperCase(), path, op })));

  it("answers 401 without a token, except on the public list", async () => {
    expect(operations().length).toBeGreaterThan(35);
    for (const { method, path } of operations()) {
      expectGate(await send(method, path.replace(/\{\w+\}/g, "1")), `${method} ${path}`);
    }
  });

  it("documents a bearer token on every operation but the public ones", () => {
    expect(doc.security).toEqual([{ bearer: [] }]);
    for (const { method, path, op } of operations()) {
      const key = `${method} ${path}`;
      // GET /metrics is public to users' tokens but needs the scraper's own.
      if (key === "GET /metrics") expect(op.security, key).toEqual([{ metricsToken: [] }]);
      else if (PUBLIC.has(key)) expect(op.security, key).toEqual([]);
      else expect(op.security ?? doc.security, key).toEqual([{ bearer: [] }]);
    }
  });
});

describe("requests to no route", () => {
  it("answer 401 without a token, and 404 with one", async () => {
    const user = await h.newUser();
    for (const [method, path] of [
      ["GET", "/no/such/route"],
      ["POST", "/users/me/nothing"],
      ["GET", "/databases/1/nothing"],
    ] as const) {
      expect((await send(method, path)).status, `${method} ${path}`).toBe(401);
      const res = await send(method, path, user.token);
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(res.body).toEqual({ detail: `No route for ${method} ${path}`, code: "not_found" });
    }
  });

  it("on a known path with another method, answer 401 without a token, and 405 with Allow with one", async () => {
    const user = await h.newUser();
    for (const [method, path, allow] of [
      ["GET", "/query", "POST"],
      ["GET", "/login", "POST"],
      ["DELETE", "/health", "GET, HEAD"],
      ["POST", "/databases/7", "GET, HEAD, PUT, DELETE"],
      ["PUT", "/api/tables/7", "GET, HEAD, PATCH, DELETE"],
    ] as const) {
      expect((await send(method, path)).status, `${method} ${path}`).toBe(401);
      const res = await send(method, path, user.token);
      expect(res.status, `${method} ${path}`).toBe(405);
      expect(res.headers.get("allow"), `${method} ${path}`).toBe(allow);
      expect(res.body).toEqual({ detail: `${method} is not allowed on ${path}; use ${allow}`, code: "method_not_allowed" });
    }
  });

  it("answer HEAD like GET: public on a public route, 401 elsewhere", async () => {
    expect((await h.call("HEAD", "/health")).status).toBe(200);
    expect((await h.call("HEAD", "/users/me")).status).toBe(401);
  });
});
