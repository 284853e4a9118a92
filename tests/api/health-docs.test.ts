// /health (seed 004 shape) with degraded dependencies, and the OpenAPI document and docs page
// generated from the route schemas.

import { serve, type ServerType } from "@hono/node-server";
import { Redis } from "ioredis";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createApp } from "../../src/app.js";
import { createRedisSessionStore } from "../../src/sessions/redis.js";
import { createHarness, type Harness } from "../support/harness.js";

describe("GET /health", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ store: "postgresql", sessions: "redis" });
  });
  afterAll(async () => h?.close());

  it.each(["/health", "/api/health"])("%s reports healthy with every dependency", async (path) => {
    const res = await h.call("GET", path);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      status: "healthy",
      message: "Service is up and running",
      version: h.config.version,
      redis: "healthy",
      store: "healthy",
      store_kind: "postgresql",
      sessions: "redis",
    });
    expect(new Date(res.body.timestamp).getTime()).toBeGreaterThan(Date.now() - 60_000);
  });

  it("reports degraded with 503 when Redis is unreachable", async () => {
    const deadRedis = new Redis({ host: "127.0.0.1", port: 1, lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
    const app = createApp({ ...h.deps, sessions: createRedisSessionStore(deadRedis) });
    const res = await app.request("/health");
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ status: "degraded", message: "Service running but Redis unavailable", redis: "unhealthy", store: "healthy" });
    deadRedis.disconnect();
  });
});

describe("embedded health and docs", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ store: "pglite" });
  });
  afterAll(async () => h?.close());

  it("says sessions are in process, for a single instance only", async () => {
    const res = await h.call("GET", "/health");
    expect(res.body).toMatchObject({ status: "healthy", redis: "not configured", sessions: "in-process (single instance only)", store_kind: "pglite" });
  });

  it("reports the store as unhealthy once it is unreachable", async () => {
    const broken = await createHarness();
    await broken.deps.store.close();
    const res = await broken.call("GET", "/health");
    expect(res.status).toBe(503);
    expect(res.body).toMatchObject({ status: "degraded", store: "unhealthy" });
    await broken.close();
  });

  it("serves an OpenAPI 3.1 document covering the routes, with bearer auth", async () => {
    const res = await h.call("GET", "/openapi.json");
    expect(res.status).toBe(200);
    expect(res.body.openapi).toBe("3.1.0");
    for (const path of ["/users/", "/login", "/users/me", "/databases/add_db_connection", "/databases", "/databases/{id}", "/databases/{id}/test", "/api/connections", "/health"]) {
      expect(Object.keys(res.body.paths)).toContain(path);
    }
    expect(res.body.components.securitySchemes.bearer).toMatchObject({ type: "http", scheme: "bearer" });
    expect(res.body.paths["/login"].post.requestBody.content).toHaveProperty("application/x-www-form-urlencoded");
  });

  it("serves an interactive docs page pointing at the document", async () => {
    const res = await h.call("GET", "/docs");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/text\/html/);
    expect(res.text).toContain("/openapi.json");
  });

  it("sends /redoc (seed 003) and /docs/ to the docs page, without a token", async () => {
    for (const path of ["/redoc", "/docs/"]) {
      const res = await h.call("GET", path);
      expect(res.status, path).toBe(301);
      expect(res.headers.get("location")).toBe("/docs");
    }
  });

  it("serves every asset of the docs page itself, public and cached for good", async () => {
    const page = await h.call("GET", "/docs");
    // Nothing from a CDN: the page must work offline and behind a strict proxy.
    expect(page.text).not.toMatch(/(https?:)?\/\/[a-z0-9]/i);
    const assets = [...page.text.matchAll(/(?:src|href)="(\/[^"]+)"/g)].map((m) => m[1]!);
    expect(assets.filter((a) => a.endsWith(".js"))).toHaveLength(1);
    expect(assets.filter((a) => a.endsWith(".css"))).toHaveLength(1);
    for (const asset of assets.filter((a) => a !== "/openapi.json")) {
      const res = await h.call("GET", asset);
      expect(res.status, asset).toBe(200);
      expect(res.headers.get("content-type")).toMatch(asset.endsWith(".js") ? /^text\/javascript/ : /^text\/css/);
      expect(res.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
      expect(res.text.length).toBeGreaterThan(10_000);
    }
  });

  it.each([
    ["a declared Content-Length", { "content-length": String(2 * 1024 * 1024) }],
    ["a chunked body", { "transfer-encoding": "chunked" }],
  ])("refuses bodies over 1 MiB with 413, for %s", async (_, headers) => {
    const res = await h.call("POST", "/users/", { body: "x".repeat(2 * 1024 * 1024), headers: { "content-type": "application/json", ...headers } });
    expect(res.status).toBe(413);
    expect(res.body.code).toBe("payload_too_large");
    // On a query route, in seed 000's envelope as every other error there.
    const query = await h.call("POST", "/api/v1/query", { body: "x".repeat(2 * 1024 * 1024), headers: { "content-type": "application/json", ...headers } });
    expect(query.status).toBe(413);
    expect(query.body).toMatchObject({ status: "error", data: null, code: "payload_too_large", error: query.body.detail });
  });

  it("answers unknown routes with a 404 in the error shape (401 without a token), and tags responses with a request id", async () => {
    expect((await h.call("GET", "/no/such/route")).status).toBe(401);
    const { token } = await h.newUser();
    const res = await h.call("GET", "/no/such/route", { token });
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ detail: "No route for GET /no/such/route", code: "not_found" });
    expect(res.headers.get("x-request-id")).toBeTruthy();
  });
});

describe("request ids over a real HTTP server", () => {
  // app.request() has no Node response: this is the path production takes (see request-edge.ts).
  let h: Harness;
  let server: ServerType;
  let base: string;
  beforeAll(async () => {
    h = await createHarness();
    const app = createApp(h.deps);
    server = await new Promise<ServerType>((resolve) => {
      const s = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(s));
    });
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server?.close(resolve));
    await h?.close();
  });

  it("tags a response with a fresh X-Request-Id, and keeps a plain one the client sent", async () => {
    const fresh = await fetch(`${base}/health`);
    expect(fresh.status).toBe(200);
    expect(fresh.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    expect(fresh.headers.get("content-type")).toMatch(/application\/json/);
    expect((await fetch(`${base}/health`, { headers: { "x-request-id": "trace-42" } })).headers.get("x-request-id")).toBe("trace-42");
    expect((await fetch(`${base}/health`, { headers: { "x-request-id": "not plain!" } })).headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("tags error responses too, next to their own headers", async () => {
    const { token } = await h.newUser();
    const missing = await fetch(`${base}/no/such/route`, { headers: { authorization: `Bearer ${token}` } });
    expect(missing.status).toBe(404);
    expect(missing.headers.get("x-request-id")).toBeTruthy();
    expect(await missing.json()).toEqual({ detail: "No route for GET /no/such/route", code: "not_found" });

    const unauthorized = await fetch(`${base}/query`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"sql":"SELECT 1"}' });
    expect(unauthorized.status).toBe(401);
    expect(unauthorized.headers.get("x-request-id")).toBeTruthy();
    expect(unauthorized.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect(await unauthorized.json()).toMatchObject({ status: "error", data: null, code: "unauthorized" });

    const tooLarge = await fetch(`${base}/users/`, { method: "POST", headers: { "content-type": "application/json" }, body: "x".repeat(2 * 1024 * 1024) });
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.headers.get("x-request-id")).toBeTruthy();
  });
});
