// Threat: a body nested thousands of levels deep. Every JSON body is checked for what the store
// cannot hold, and that walk went level by level, copying the path at each: a 1 MB body of
// nested arrays cost seconds of the event loop (every request waited), and 2,000 levels ran
// out of stack (500). Bodies nested deeper than 64 levels are now refused with a 422, after a
// walk whose cost follows the body's size. /mcp is where open fields let any nesting through.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { MAX_BODY_DEPTH } from "../../src/http/schemas.js";
import { createHarness, type Harness } from "../support/harness.js";

const nested = (depth: number) => "[".repeat(depth) + "]".repeat(depth);
const mcpPing = (params: string) => `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":${params}}}`;

describe("deeply nested JSON bodies", () => {
  let h: Harness;
  let token: string;
  beforeAll(async () => {
    h = await createHarness();
    token = (await h.newUser()).token;
  });
  afterAll(async () => h?.close());

  const mcp = (body: string) =>
    h.call("POST", "/mcp", { token, body, headers: { "content-type": "application/json", accept: "application/json, text/event-stream" } });

  it("answers 422 naming the depth for a body nested past the limit, with no error logged", async () => {
    const before = h.logs.length;
    for (const depth of [MAX_BODY_DEPTH + 1, 5_000, 100_000]) {
      const res = await mcp(mcpPing(nested(depth)));
      expect(res.status, `${depth} levels: ${res.text.slice(0, 200)}`).toBe(422);
      expect(res.body.errors).toContainEqual({ path: expect.stringMatching(/^body\.params\.x(\.0)+$/), message: `nests deeper than ${MAX_BODY_DEPTH} levels` });
    }
    expect(h.logs.slice(before).join("")).not.toContain('"level":50');
  });

  it("refuses a megabyte of deep nests in about the time it takes to read it", async () => {
    // 356 nests of 1,400 levels each: seconds of the event loop before.
    const res = await mcp(mcpPing(`[${Array.from({ length: 356 }, () => nested(1_400)).join(",")}]`));
    expect(res.status).toBe(422);
    // Every request was waiting meanwhile; one still answers at once.
    expect((await h.call("GET", "/health")).status).toBe(200);
  });

  it("takes nesting within the limit", async () => {
    // The body, params and x take three levels.
    const res = await mcp(mcpPing(nested(MAX_BODY_DEPTH - 3)));
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ jsonrpc: "2.0", id: 1, result: {} });
  });
});
