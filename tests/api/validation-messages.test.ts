// What a 422 says: one problem per field, in the user's words: "required" rather than "expected
// string, received undefined", "must be a number" rather than "received NaN", an id's own
// maximum rather than also the largest safe integer, a date that does not parse not also "out of
// range".

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";

let h: Harness;
let token: string;
beforeAll(async () => {
  h = await createHarness({ store: "pglite" });
  token = (await h.newUser()).token;
});
afterAll(async () => {
  await h?.close();
});

describe("422 messages", () => {
  it("does not repeat a field name that is no plain name: JSON sent as a form is one field named by all of it, password too", async () => {
    const res = await h.call("POST", "/login", { body: JSON.stringify({ username: "ana@example.com", password: "hunter2-secret" }), headers: { "content-type": "application/x-www-form-urlencoded" } });
    expect(res.status).toBe(422);
    expect(res.text).not.toContain("hunter2-secret");
    expect(res.body.errors).toContainEqual({ path: "body", message: expect.stringMatching(/name not shown.*Content-Type/) });
  });

  it("names the first 20 problems and counts the rest: 80,000 unknown fields are not a 422 of megabytes", async () => {
    const json = Object.fromEntries(Array.from({ length: 80_000 }, (_, i) => [`k${i}`, 1]));
    const res = await h.call("POST", "/users/", { json: { name: "Ana", email: "ana-many@example.com", password: "secure123", ...json } });
    expect(res.status).toBe(422);
    expect(res.body.errors).toHaveLength(21);
    expect(res.body.errors.slice(0, 2)).toEqual([{ path: "body.k0", message: "unknown field" }, { path: "body.k1", message: "unknown field" }]);
    expect(res.body.errors[20]).toEqual({ path: "body", message: "and 79980 more problems not listed" });
    expect(res.text.length).toBeLessThan(4000);
  });

  it.each([
    ["/databases/0x2", "param.id", "must be a whole number, written in digits only"],
    ["/databases/1e0", "param.id", "must be a whole number, written in digits only"],
    ["/databases/%2B1", "param.id", "must be a whole number, written in digits only"],
    ["/databases/01", "param.id", "must be a whole number, written in digits only"],
    ["/databases/1%20", "param.id", "must be a whole number, written in digits only"],
    [`/databases/${"9".repeat(400)}`, "param.id", "Too big: expected number to be <=2147483647"],
    ["/api/alerts?limit=0x10", "query.limit", "must be a whole number, written in digits only"],
    ["/api/alerts?limit=5&limit=6", "query.limit", "given more than once; send it once"],
    ["/api/alerts?limit=", "query.limit", "is empty: give a whole number, or leave it out"],
    ["/api/audit?cursor=1e3", "query.cursor", "must be a whole number, written in digits only"],
    ["/api/tables/1/runs?before_id=+7", "query.before_id", "must be a whole number, written in digits only"],
  ])("reads a number in %s only as digits: one number, one spelling", async (path, at, message) => {
    const res = await h.call("GET", path, { token });
    expect(res.status, res.text).toBe(422);
    expect(res.body.errors).toEqual([{ path: at, message }]);
  });

  it.each([
    ["/api/audit?source=query&source=ask", "query.source"],
    ["/api/alerts?status=open&status=active", "query.status"],
    ["/api/audit?from=2026-01-01T00:00:00Z&from=2026-02-01T00:00:00Z", "query.from"],
    ["/api/tables/1/runs?check=volume&check=freshness", "query.check"],
  ])("says a parameter in %s was given more than once, whatever its type", async (path, at) => {
    const res = await h.call("GET", path, { token });
    expect(res.status, res.text).toBe(422);
    expect(res.body.errors).toEqual([{ path: at, message: "given more than once; send it once" }]);
  });

  it.each([
    ["a user's", "POST", "/users/", (name: string) => ({ name, email: "named@example.com", password: "secure123" })],
    ["an API key's", "POST", "/api/keys", (name: string) => ({ name, scopes: ["query"] })],
    ["a connection's", "POST", "/databases/add_db_connection", (name: string) => ({ name, db_type: "sqlite", database_name: "none.sqlite" })],
    ["an instance's", "POST", "/api/v1/instances", (name: string) => ({ name, db_type: "sqlite", database: "none.sqlite" })],
    ["a channel's", "POST", "/api/channels", (name: string) => ({ name, kind: "webhook", url: "https://hooks.example.com/x" })],
  ])("refuses %s name with control characters, text-direction marks or nothing visible", async (_, method, path, body) => {
    for (const [name, message] of [
      ["admin\u202egnp.exe", "must not contain control characters or text-direction marks"],
      ["ops\u001b[31m alert", "must not contain control characters or text-direction marks"],
      ["line\nbreak", "must not contain control characters or text-direction marks"],
      ["\u200b", "must contain a visible character"],
    ]) {
      const res = await h.call(method, path, { token, json: body(name!) });
      expect(res.status, `${name} ${res.text}`).toBe(422);
      expect(res.body.errors).toContainEqual({ path: "body.name", message });
    }
    // Joiners are how names and emoji are written.
    const family = await h.call(method, path, { token, json: body("Ops \u{1f468}\u200d\u{1f469}") });
    expect(family.body.errors ?? []).not.toContainEqual(expect.objectContaining({ path: "body.name" }));
  });

  it.each([
    ["a missing field", "POST", "/users/", { name: "Ana", password: "secure123" }, [["body.email", "required"]]],
    ["an id that is not a number", "GET", "/databases/abc/schema", undefined, [["param.id", "must be a whole number, written in digits only"]]],
    ["an id past its maximum", "POST", "/query", { sql: "SELECT 1", connection_id: 2147483648 }, [["body.connection_id", expect.stringMatching(/2147483647$/)]]],
    ["a time that does not parse", "GET", "/api/audit?from=notadate", undefined, [["query.from", expect.not.stringMatching(/years/)]]],
    // A typo in a filter would otherwise list everything, as if there were no filter.
    ["a misspelt filter", "GET", "/api/alerts?staus=open", undefined, [["query.staus", "unknown field"]]],
    ["a misspelt audit filter", "GET", "/api/audit?outcom=error", undefined, [["query.outcom", "unknown field"]]],
    ["a misspelt page size", "GET", "/api/tables?limt=5", undefined, [["query.limt", "unknown field"]]],
    // The store cannot hold NUL: it failed there (500) rather than as input.
    ["NUL in a filter", "GET", "/api/tables/1/runs?check=a%00b", undefined, [["query.check", "must not contain NUL (\\u0000) characters"]]],
    ["an empty filter", "GET", "/api/tables/1/runs?check=", undefined, [["query.check", expect.stringMatching(/>=1 char/)]]],
  ])("%s: one problem per field, in words", async (_what, method, path, json, errors) => {
    const res = await h.call(method as "GET" | "POST", path, { token: path === "/users/" ? undefined : token, json });
    expect(res.status, res.text).toBe(422);
    expect(res.body.errors.map((e: { path: string; message: string }) => [e.path, e.message])).toEqual(errors);
  });
});
