// The pure parts of model-server fault handling: strict tool-call arguments, the server label,
// and how an error chain becomes a 502/504 that names the server and never the key.

import { AIMessage, AIMessageChunk } from "@langchain/core/messages";
import { describe, expect, it } from "vitest";

import { modelError, serverLabel } from "../../agents/model-errors.js";
import { ModelServerFailure, retryAfterOf } from "../../agents/model-fetch.js";
import { invalidArgumentsReply, parseToolArguments, strictToolCalls } from "../../agents/tool-arguments.js";

describe("parseToolArguments", () => {
  it.each([
    ['{"sql": "SELECT 1"}', { args: { sql: "SELECT 1" } }],
    ['  {"names": ["Album", "Track"]}\n', { args: { names: ["Album", "Track"] } }],
    ["{}", { args: {} }],
    ['{"sql": "SELECT COUNT(*) FROM Track WHERE GenreId = 1', { error: expect.stringMatching(/^not valid JSON \(.+\)$/) }],
    ['{"sql": "SELECT 1"', { error: expect.stringMatching(/^not valid JSON/) }],
    ['{"sql": "SELECT 1"}}', { error: expect.stringMatching(/^not valid JSON/) }],
    ["", { error: expect.stringMatching(/^not valid JSON/) }],
    ["{sql: 'SELECT 1'}", { error: expect.stringMatching(/^not valid JSON/) }],
    ['"SELECT 1"', { error: "not a JSON object (got string)" }],
    ['["SELECT 1"]', { error: "not a JSON object (got an array)" }],
    ["null", { error: "not a JSON object (got null)" }],
    ["42", { error: "not a JSON object (got number)" }],
    [`{"sql": "SELECT 1", "x": ${"[".repeat(32)}${"]".repeat(32)}}`, { error: "nested deeper than 32 levels" }],
    [`{"sql": "SELECT 1", "x": ${"[".repeat(31)}${"]".repeat(31)}}`, { args: { sql: "SELECT 1", x: expect.any(Array) } }],
  ])("%j", (raw, expected) => {
    expect(parseToolArguments(raw)).toEqual(expected);
  });
});

describe("strictToolCalls", () => {
  const cut = '{"sql": "SELECT COUNT(*) AS n FROM Track WHERE GenreId = 1';

  it("reads a streamed call from its raw chunks, not from LangChain's partial-JSON repair", () => {
    const merged = new AIMessageChunk({ content: "", tool_call_chunks: [{ index: 0, id: "call_1", name: "run_query", args: cut.slice(0, 20), type: "tool_call_chunk" }] }).concat(
      new AIMessageChunk({ content: "", tool_call_chunks: [{ index: 0, args: cut.slice(20), type: "tool_call_chunk" }] }),
    );
    // What LangChain made of it: a shorter, different statement, ready to run.
    expect(merged.tool_calls?.[0]?.args).toEqual({ sql: "SELECT COUNT(*) AS n FROM Track WHERE GenreId = 1" });
    const { calls, invalid } = strictToolCalls(merged, "p");
    expect(calls).toEqual([{ name: "run_query", args: {}, id: "call_1", type: "tool_call" }]);
    expect(invalid).toEqual([{ name: "run_query", args: cut, id: "call_1", error: expect.stringMatching(/^not valid JSON/), type: "invalid_tool_call" }]);
  });

  it("reads a plain completion's calls from the server's own tool_calls, ids filled in", () => {
    const reply = new AIMessage({
      content: "",
      additional_kwargs: {
        tool_calls: [
          { id: "", type: "function", function: { name: "run_query", arguments: '{"sql": "SELECT 1"}' } },
          { id: "call_b", type: "function", function: { name: "describe_tables", arguments: '{"names": ["A"' } },
        ],
      },
    });
    const { calls, invalid } = strictToolCalls(reply, "p");
    expect(calls).toEqual([
      { name: "run_query", args: { sql: "SELECT 1" }, id: "p_0", type: "tool_call" },
      { name: "describe_tables", args: {}, id: "call_b", type: "tool_call" },
    ]);
    expect(invalid.map((c) => [c.id, c.args])).toEqual([["call_b", '{"names": ["A"']]);
  });

  it("tells the model what it sent and that nothing ran", () => {
    const text = invalidArgumentsReply({ name: "run_query", args: cut, id: "c", error: "not valid JSON (Unterminated string in JSON at position 56)", type: "invalid_tool_call" });
    expect(text).toBe(
      `ERROR: the arguments of run_query were not valid JSON (Unterminated string in JSON at position 56), so nothing was run. You sent: ${cut}. Call the tool again with its complete arguments as one JSON object.`,
    );
  });
});

describe("serverLabel", () => {
  it.each([
    ["http://127.0.0.1:11434/v1", "http://127.0.0.1:11434/v1"],
    ["http://127.0.0.1:11434/v1/", "http://127.0.0.1:11434/v1"],
    ["https://user:s3cret@llm.example.com/v1?api-key=abc#x", "https://llm.example.com/v1"],
    ["not a url", "(an unparsable base URL)"],
  ])("%s -> %s", (url, label) => {
    expect(serverLabel(url)).toBe(label);
  });
});

describe("retryAfterOf", () => {
  const headers = (h: Record<string, string>) => new Headers(h);
  it.each([
    [{ "retry-after": "30" }, 30],
    [{ "retry-after": "1.5" }, 2],
    [{ "retry-after-ms": "2500" }, 3],
    [{ "retry-after-ms": "soon", "retry-after": "7" }, 7],
    [{ "retry-after": new Date(Date.now() + 60_000).toUTCString() }, 60],
    [{ "retry-after": "Wed, 21 Oct 2015 07:28:00 GMT" }, 0],
    // Past any sensible wait: capped at an hour.
    [{ "retry-after": "99999999999999999999999" }, 3600],
    [{ "retry-after-ms": "1e30" }, undefined],
    [{ "retry-after": "Fri, 01 Jan 2100 00:00:00 GMT" }, 3600],
    // Nothing that reads as a wait: no wait (Date.parse takes "-5" for a year).
    [{ "retry-after": "-5" }, undefined],
    [{ "retry-after": "later" }, undefined],
    [{}, undefined],
  ])("%j: %s", (h, seconds) => {
    const got = retryAfterOf(headers(h));
    if (seconds === 60) expect(got).toBeGreaterThanOrEqual(59);
    else expect(got).toBe(seconds);
  });
});

describe("modelError", () => {
  const server = { url: "http://llm.internal:8000/v1", apiKey: "sk-live-0123456789" };
  const chain = (...errors: object[]) => errors.reduceRight<unknown>((cause, e) => Object.assign(e, cause ? { cause } : {}), undefined);
  const sysError = (code: string, message: string) => Object.assign(new Error(message), { code });

  it.each([
    ["a refused connection", chain(new Error("Connection error."), new TypeError("fetch failed"), sysError("ECONNREFUSED", "connect ECONNREFUSED 10.0.0.5:8000")), "model_failed", "connection_refused", /failed: connection refused \(connect ECONNREFUSED 10\.0\.0\.5:8000\)$/],
    ["an unknown host", chain(new Error("Connection error."), new TypeError("fetch failed"), sysError("ENOTFOUND", "getaddrinfo ENOTFOUND llm.internal")), "model_failed", "dns_failure", /DNS lookup failed/],
    ["a stream cut off", chain(new TypeError("terminated"), sysError("UND_ERR_SOCKET", "other side closed")), "model_failed", "stream_cut_off", /stream cut off: other side closed/],
    ["the SDK's timeout", Object.assign(new Error("Request timed out."), { name: "TimeoutError" }), "model_timeout", "timeout", /did not answer within 1500 ms/],
    ["a judged answer", chain(new Error("Connection error."), new ModelServerFailure("not_chat_completion", 'answered HTTP 200 with text/html that is not JSON, so not a chat completion: "<html>"')), "model_failed", "not_chat_completion", /failed: answered HTTP 200 with text\/html/],
    ["an HTTP status", Object.assign(new Error("503 overloaded"), { status: 503 }), "model_failed", "http_status", /failed: HTTP 503 Service Unavailable: "overloaded"$/],
    ["an echoed key", Object.assign(new Error("401 Incorrect API key provided: sk-live-0123456789 (Bearer sk-other)"), { status: 401 }), "model_failed", "http_status", /provided: \[redacted\] \(Bearer \[redacted\]\)/],
    ["a key echoed reformatted", Object.assign(new Error("401 bad key=live-0123456789 for user"), { status: 401 }), "model_failed", "http_status", /bad key=\[redacted\] for user/],
    ["someone else's key", Object.assign(new Error("401 key sk-proj-AbCdEf0123456789 is revoked"), { status: 401 }), "model_failed", "http_status", /key \[redacted\] is revoked/],
    ["a quota run out (429, but no wait helps)", Object.assign(new Error("429 You exceeded your current quota, please check your plan and billing details."), { status: 429, code: "insufficient_quota" }), "model_failed", "http_status", /HTTP 429 Too Many Requests/],
    ["a URL with credentials", new TypeError("Request cannot be constructed from a URL that includes credentials: http://u:pw@llm.internal:8000/v1?key=k"), "model_failed", "connection_failed", /credentials: http:\/\/llm\.internal:8000\/v1$/],
  ])("%s", (_name, err, code, cause, detail) => {
    const mapped = modelError(err, server, 1500);
    expect(mapped.code).toBe(code);
    expect(mapped.message).toMatch(/^The model server at http:\/\/llm\.internal:8000\/v1 /);
    expect(mapped.message).toMatch(detail);
    expect(mapped.extra).toMatchObject({ model_server: server.url, model_cause: cause });
    expect(JSON.stringify([mapped.message, mapped.extra])).not.toMatch(/sk-live|sk-other|pw@/);
  });

  it("calls any failure met while the watchdog was stopping a silent answer a timeout", () => {
    const mapped = modelError(new ModelServerFailure("stream_cut_off", "its event stream ended before the answer was finished"), server, 700, true);
    expect(mapped.code).toBe("model_timeout");
    expect(mapped.extra).toMatchObject({ timeout_ms: 700, model_cause: "timeout" });
  });
});
