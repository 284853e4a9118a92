// Malformed input on every route of the OpenAPI document: never a 500, always the error
// shape. Bodies come from a seeded generator, so a failure reproduces.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";
import { sqliteTarget } from "../support/targets.js";

function prng(seed: number) {
  return () => {
    seed = (seed * 1_103_515_245 + 12_345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
}

function randomValue(rand: () => number, depth = 0): unknown {
  const pick = Math.floor(rand() * (depth > 2 ? 7 : 9));
  switch (pick) {
    case 0: return null;
    case 1: return rand() > 0.5;
    case 2: return Math.floor(rand() * 2 ** 40) * (rand() > 0.5 ? 1 : -1);
    case 3: return rand() * 1e308;
    case 4: return "";
    case 5: return "x".repeat(Math.floor(rand() * 5000));
    case 6: return ["'; DROP TABLE users; --", "\u0000\uffff\ud800", "../../etc/passwd", "<script>", "1e999", "-0"][Math.floor(rand() * 6)];
    case 7: return Array.from({ length: Math.floor(rand() * 4) }, () => randomValue(rand, depth + 1));
    default: {
      const keys = ["name", "email", "password", "username", "db_type", "host", "port", "database_name", "db_password", "ssl", "owner_id", "sql", "question", "__proto__", "constructor"];
      const obj: Record<string, unknown> = {};
      for (let i = Math.floor(rand() * 6); i > 0; i--) obj[keys[Math.floor(rand() * keys.length)]!] = randomValue(rand, depth + 1);
      return obj;
    }
  }
}

const FIXED_BODIES: { body: string; type: string }[] = [
  { body: "{", type: "application/json" },
  { body: "", type: "application/json" },
  { body: "null", type: "application/json" },
  { body: "[]", type: "application/json" },
  { body: '"text"', type: "application/json" },
  { body: "12", type: "application/json" },
  { body: '{"a":' + "[".repeat(5000) + "]".repeat(5000) + "}", type: "application/json" },
  { body: "username=&password=", type: "application/x-www-form-urlencoded" },
  { body: "%%%=%", type: "application/x-www-form-urlencoded" },
  { body: "\u0000\u0001binary", type: "application/octet-stream" },
  { body: "x".repeat(2 * 1024 * 1024), type: "application/json" },
];

const ID_VALUES = ["abc", "-1", "0", "99999999999999999999", "1.5", "%00", "1e3"];

let h: Harness;
let token: string;
let routes: { method: string; path: string }[];

beforeAll(async () => {
  h = await createHarness();
  const user = await h.newUser();
  token = user.token;
  const target = await sqliteTarget(h.sqliteRoot);
  await h.call("POST", "/databases/add_db_connection", { token, json: target.body });
  const doc = (await h.call("GET", "/openapi.json")).body as { paths: Record<string, Record<string, unknown>> };
  // Without /logout, which reads no body and would revoke the token the other routes are fed.
  routes = Object.entries(doc.paths)
    .flatMap(([path, ops]) => Object.keys(ops).map((method) => ({ method: method.toUpperCase(), path })))
    .filter((route) => route.path !== "/logout");
});
afterAll(async () => h?.close());

function expectHandled(res: { status: number; body: unknown; text: string }, label: string) {
  expect(res.status, `${label} -> ${res.status} ${res.text.slice(0, 200)}`).toBeLessThan(500);
  if (res.status >= 400) expect(res.body, label).toMatchObject({ detail: expect.any(String), code: expect.any(String) });
}

describe("malformed input on every route", () => {
  it("covers the documented routes", () => {
    expect(routes.length).toBeGreaterThanOrEqual(10);
  });

  it("never answers 500 to fixed malformed bodies, with or without a token", async () => {
    for (const { method, path } of routes) {
      for (const id of ["1", ...ID_VALUES]) {
        const url = path.replace("{id}", id);
        for (const { body, type } of FIXED_BODIES) {
          for (const auth of [token, undefined]) {
            const res = await h.call(method, url, { body: method === "GET" ? undefined : body, headers: { "content-type": type }, token: auth });
            expectHandled(res, `${method} ${url} ${type} ${body.slice(0, 30)}`);
          }
        }
      }
    }
  });

  it("never answers 500 to 40 generated JSON bodies per route", async () => {
    const rand = prng(20261123);
    for (const { method, path } of routes) {
      if (method === "GET") continue;
      for (let i = 0; i < 40; i++) {
        const body = JSON.stringify(randomValue(rand));
        const url = path.replace("{id}", "1");
        const res = await h.call(method, url, { body, headers: { "content-type": "application/json" }, token });
        expectHandled(res, `${method} ${url} ${body.slice(0, 80)}`);
      }
    }
  });
});
