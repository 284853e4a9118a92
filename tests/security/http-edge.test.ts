// What a served Pulse answers to requests that never reach a route whole: headers too large, a
// body Node cannot parse, an Expect it does not know, 100-continue for a body too large,
// headers or a body that do not arrive in time, and a body the client cuts off. Each is a JSON
// {detail, code} (never Node's empty body), logged as the client's doing, never as the
// metadata store failing, and Pulse goes on answering.

import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";

const METRICS_TOKEN = "scrape-token-0123456789abcdef";
let h: Harness;
let port: number;

beforeAll(async () => {
  h = await createHarness({ env: { HTTP_HEADERS_TIMEOUT_MS: "1000", HTTP_REQUEST_TIMEOUT_MS: "2000", METRICS_TOKEN } });
  ({ port } = await h.serve());
});
afterAll(async () => {
  await h?.close();
});

interface RawAnswer {
  status: number;
  head: string;
  body: string;
  /** All the server sent, a 100 Continue included. */
  text: string;
}

/** Sends `parts` on a new socket (`gapMs` apart), then waits for the server to answer and close,
 * or `closeAfterMs` to close it itself. */
async function raw(parts: string[], options: { gapMs?: number; closeAfterMs?: number } = {}): Promise<RawAnswer | null> {
  const socket = net.connect(port, "127.0.0.1");
  const chunks: Buffer[] = [];
  socket.on("data", (c: Buffer) => chunks.push(c));
  socket.on("error", () => undefined);
  const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
  await new Promise<void>((resolve) => socket.on("connect", () => resolve()));
  for (const part of parts) {
    socket.write(part);
    if (options.gapMs) await new Promise((r) => setTimeout(r, options.gapMs));
  }
  if (options.closeAfterMs !== undefined) setTimeout(() => socket.destroy(), options.closeAfterMs);
  await closed;
  const text = Buffer.concat(chunks).toString("utf8");
  if (!text) return null;
  // A 100 Continue comes before the answer.
  const final = text.replace(/^HTTP\/1\.1 100 Continue\r\n\r\n/, "");
  const [head, body = ""] = final.split("\r\n\r\n", 2);
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head!)?.[1]), head: head!, body, text };
}

const jsonOf = (answer: RawAnswer | null) => {
  expect(answer?.head).toMatch(/content-type: application\/json/i);
  return JSON.parse(answer!.body) as { code: string; detail: string };
};

/** The request lines and store warnings logged from `from` on. */
function logged(from: number): { requests: Record<string, unknown>[]; storeWarnings: number } {
  const lines = h.logs.slice(from).flatMap((chunk) => chunk.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>));
  return { requests: lines.filter((l) => l.msg === "request"), storeWarnings: lines.filter((l) => l.msg === "metadata store unavailable").length };
}

async function stillServing() {
  expect((await h.call("GET", "/health")).status).toBe(200);
}

describe("requests Node's parser refuses", () => {
  it("answers headers larger than it takes with a JSON 431", async () => {
    const answer = await raw([`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`]);
    expect(answer?.status).toBe(431);
    expect(jsonOf(answer)).toMatchObject({ code: "headers_too_large", detail: expect.stringContaining("16 KiB") });
    await stillServing();
  });

  it("answers a malformed chunked body with a JSON 400 naming what is wrong", async () => {
    const answer = await raw(["POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"]);
    expect(answer?.status).toBe(400);
    expect(jsonOf(answer)).toMatchObject({ code: "bad_request", detail: expect.stringMatching(/^The request is not valid HTTP\/1\.1: .*chunk/i) });
    await stillServing();
  });

  it("answers an unknown Expect with a JSON 417", async () => {
    const answer = await raw(["POST /login HTTP/1.1\r\nHost: x\r\nExpect: something-else\r\nContent-Length: 2\r\n\r\n{}"]);
    expect(answer?.status).toBe(417);
    expect(jsonOf(answer)).toMatchObject({ code: "expectation_failed", detail: expect.stringContaining("something-else") });
  });

  it("refuses a body announced too large before 100-continue asks for it, and continues one that fits", async () => {
    const from = h.logs.length;
    const large = await raw(["POST /login HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\n\r\n"]);
    expect(large?.status).toBe(413);
    expect(large?.text).not.toContain("100 Continue");
    expect(jsonOf(large)).toMatchObject({ code: "payload_too_large" });
    // Logged, though no route saw it.
    expect(h.logs.slice(from).join("")).toContain('"msg":"request refused before its body was sent"');

    const body = JSON.stringify({ username: "nobody@example.com", password: "not the password" });
    const socket = net.connect(port, "127.0.0.1");
    const text = await new Promise<string>((resolve) => {
      let seen = "";
      socket.on("data", (c: Buffer) => {
        seen += c.toString();
        // The body goes once the server asks for it.
        if (seen === "HTTP/1.1 100 Continue\r\n\r\n") socket.write(body);
        if (/\r\n\r\n[\s\S]*}$/.test(seen.replace(/^HTTP\/1\.1 100 Continue\r\n\r\n/, ""))) resolve(seen);
      });
      socket.write(
        `POST /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`,
      );
    });
    socket.destroy();
    expect(text).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 401 /);
  });
});

describe("the answers no route gave", () => {
  /** pulse_http_requests_total for requests no route matched, by status. */
  async function unmatched(): Promise<Record<string, number>> {
    const res = await h.call("GET", "/metrics", { token: METRICS_TOKEN });
    expect(res.status).toBe(200);
    const counts: Record<string, number> = {};
    for (const [, method, status, n] of res.text.matchAll(/^pulse_http_requests_total\{method="(\w+)",route="unmatched",status="(\d+)"\} (\d+)$/gm)) {
      counts[`${method} ${status}`] = (counts[`${method} ${status}`] ?? 0) + Number(n);
    }
    return counts;
  }

  it("counts them in pulse_http_requests_total, so an operator sees a flood of them", async () => {
    const before = await unmatched();
    await raw(["POST /login HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\n\r\n"]);
    await raw([`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`]);
    await raw(["POST /login HTTP/1.1\r\nHost: x\r\nExpect: something-else\r\nContent-Length: 2\r\n\r\n{}"]);
    await raw(["GET /health HTTP/1.1\r\n"], { closeAfterMs: 3000 });
    const after = await unmatched();
    const added = (key: string) => (after[key] ?? 0) - (before[key] ?? 0);
    expect([added("POST 413"), added("other 431"), added("POST 417"), added("other 408")]).toEqual([1, 1, 1, 1]);
  });
});

describe("requests that do not arrive in time", () => {
  it("answers headers that trickle past HTTP_HEADERS_TIMEOUT_MS with a JSON 408", async () => {
    const parts = ["GET /health HTTP/1.1\r\n", ...Array.from({ length: 8 }, (_, i) => `X-Slow-${i}: a\r\n`)];
    const answer = await raw(parts, { gapMs: 250 });
    expect(answer?.status).toBe(408);
    expect(jsonOf(answer)).toMatchObject({ code: "request_timeout", detail: expect.stringContaining("HTTP_HEADERS_TIMEOUT_MS") });
    await stillServing();
  });

  it("closes the connection after a 408: a client that goes on sending never gets its request run", async () => {
    // A sign-up whose headers are not all there in time; the client keeps its side open after
    // the server's answer (allowHalfOpen), then sends the rest of the request it was told timed out.
    const email = `late-${Date.now()}@example.com`;
    const body = JSON.stringify({ name: "Late", email, password: "correct horse battery" });
    const socket = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
    socket.on("error", () => undefined);
    let text = "";
    socket.on("data", (c: Buffer) => (text += c.toString()));
    const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
    socket.write("POST /users/ HTTP/1.1\r\nHost: x\r\n");
    await expect.poll(() => text, { timeout: 5000 }).toMatch(/^HTTP\/1\.1 408 /);
    socket.write(`Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    await new Promise((r) => setTimeout(r, 500));
    socket.destroy();
    await closed;
    expect(text.match(/HTTP\/1\.1 \d{3}/g)).toEqual(["HTTP/1.1 408"]);
    // Never registered: the address is free.
    expect((await h.call("POST", "/users/", { json: JSON.parse(body) })).status).toBe(201);
  });

  it("answers a body left unfinished past HTTP_REQUEST_TIMEOUT_MS with a JSON 408, and logs no store failure", async () => {
    const from = h.logs.length;
    const answer = await raw(["POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"username\":"]);
    expect(answer?.status).toBe(408);
    expect(jsonOf(answer)).toMatchObject({ code: "request_timeout" });
    await stillServing();
    expect(logged(from).storeWarnings).toBe(0);
  });
});

describe("the same answers on /mcp", () => {
  // An MCP client reads the JSON-RPC error: there as on every other refusal of /mcp.
  const mcpHead = "POST /mcp HTTP/1.1\r\nHost: x\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\n";

  it.each([
    ["a body announced too large before 100-continue", [`${mcpHead}Expect: 100-continue\r\nContent-Length: 2000000\r\n\r\n`], 413, "payload_too_large", -32600],
    ["an unknown Expect", [`${mcpHead}Expect: something-else\r\nContent-Length: 2\r\n\r\n{}`], 417, "expectation_failed", -32000],
    ["a body left unfinished past HTTP_REQUEST_TIMEOUT_MS", [`${mcpHead}Content-Length: 100\r\n\r\n{"jsonrpc":`], 408, "request_timeout", -32000],
  ])("carry a JSON-RPC error: %s", async (_name, parts, status, code, rpcCode) => {
    // Signed in, so that a request read whole would be served: the refusal is the server's.
    const { token } = await h.newUser();
    const answer = await raw(parts.map((part) => part.replace("Host: x\r\n", `Host: x\r\nAuthorization: Bearer ${token}\r\n`)));
    expect(answer?.status).toBe(status);
    expect(jsonOf(answer)).toMatchObject({ code, jsonrpc: "2.0", error: { code: rpcCode, message: expect.any(String) }, id: null });
  });

  it("leave the other paths' answers as they were", async () => {
    const answer = await raw(["POST /login HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2000000\r\n\r\n"]);
    expect(Object.keys(jsonOf(answer)).sort()).toEqual(["code", "detail"]);
  });
});

describe("a body the client cuts off", () => {
  it.each([
    ["chunked", "POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n"],
    ["with a Content-Length", "POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\":"],
    ["a form", "POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nusername=a"],
  ])("(%s) is logged as the client's leaving (499), not as the metadata store failing", async (_kind, request) => {
    const from = h.logs.length;
    await raw([request], { closeAfterMs: 100 });
    await expect.poll(() => logged(from).requests.find((l) => l.path === "/login"), { timeout: 5000 }).toMatchObject({ status: 499 });
    expect(logged(from).storeWarnings).toBe(0);
    await stillServing();
  });
});
