// The SQL agent end to end: the real ChatOpenAI client against a scripted OpenAI-compatible
// server on 127.0.0.1, and a real guarded connector on a copy of Chinook (SQLite).

import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

import { runAgent, type AgentEvent, type AgentResult, type RunAgentInput } from "../../agents/graph.js";
import { createChatModel } from "../../agents/model.js";
import { isModelConfigured } from "../../src/config.js";
import { loadPrompts } from "../../agents/prompts.js";
import { buildSchemaIndex, type SchemaIndex } from "../../agents/schema-index.js";
import { createBudget } from "../../src/connectors/budget.js";
import { loadGuard } from "../../src/connectors/guard/index.js";
import { GuardedConnector } from "../../src/connectors/guarded.js";
import { openDriver } from "../../src/connectors/open.js";
import { DomainError } from "../../src/errors.js";
import { lastToolResult, startFakeOpenAI, systemPromptOf, textOf, toolResultsOf, type FakeOpenAI, type FakeStep } from "../support/fake-openai.js";
import { CHINOOK_SQLITE } from "../support/targets.js";

let dir: string;
let connector: GuardedConnector;
let index: SchemaIndex;
const realFetch = globalThis.fetch;
/** Every URL any code in this process fetched: the agent must reach the fake server only. */
const fetched: string[] = [];
const servers: FakeOpenAI[] = [];

beforeAll(async () => {
  await loadGuard();
  globalThis.fetch = ((input: string | URL | Request, init?: RequestInit) => {
    fetched.push(input instanceof Request ? input.url : String(input));
    return realFetch(input, init);
  }) as typeof fetch;
  dir = mkdtempSync(path.join(tmpdir(), "pulse-agent-"));
  const file = path.join(dir, "chinook.sqlite");
  copyFileSync(CHINOOK_SQLITE, file);
  const target = { dialect: "sqlite" as const, host: "", port: 0, database: "chinook.sqlite", username: "", password: "", ssl: false, connectTimeoutMs: 5000, filePath: file };
  const driver = await openDriver(target, { maxConnections: 1, idleTimeoutMs: 10_000 });
  connector = new GuardedConnector(1, 1, "target", driver, { maxRows: 1000, maxBytes: 5_000_000, timeoutMs: 5000 }, createBudget({ concurrency: 2, maxWaiting: 8, perMinute: 10_000, maxWaitMs: 5000 }));
  index = await buildSchemaIndex(await connector.schema());
});

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

afterAll(async () => {
  globalThis.fetch = realFetch;
  await connector?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Run {
  fake: FakeOpenAI;
  events: AgentEvent[];
  result: Promise<AgentResult>;
}

function run(script: FakeStep[], overrides: Partial<RunAgentInput> & { timeoutMs?: number; contextTokens?: number } = {}): Promise<Run> {
  return startFakeOpenAI(script).then((fake) => {
    servers.push(fake);
    const events: AgentEvent[] = [];
    const { timeoutMs = 5000, contextTokens, ...input } = overrides;
    const model = createChatModel({ baseUrl: fake.baseUrl, model: "fake-model", temperature: 0, timeoutMs, contextTokens });
    const before = fetched.length;
    const result = runAgent(model, {
      question: "Which countries have the most invoices?",
      history: [],
      dialect: connector.dialect,
      connector,
      index,
      maxSteps: 6,
      maxRowsToModel: 50,
      apiMaxRows: 500,
      schemaTokenBudget: 4000,
      onEvent: (e) => events.push(e),
      ...input,
    }).finally(() => {
      const urls = fetched.slice(before);
      expect(urls.length).toBeGreaterThan(0);
      expect(urls.filter((url) => !url.startsWith(fake.baseUrl))).toEqual([]);
    });
    return { fake, events, result };
  });
}

const TOP_COUNTRIES = "SELECT BillingCountry, COUNT(*) AS invoices FROM Invoice GROUP BY BillingCountry ORDER BY invoices DESC, BillingCountry LIMIT 3";

async function expectDomainError(promise: Promise<unknown>, code: string): Promise<DomainError> {
  const err = await promise.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(DomainError);
  expect((err as DomainError).code).toBe(code);
  return err as DomainError;
}

describe("runAgent answers a question", () => {
  it("finds tables, describes one, runs a query and answers from the rows", async () => {
    const { fake, result } = await run(
      [
        { toolCalls: [{ name: "find_tables", args: { query: "invoice country" } }] },
        { toolCalls: [{ name: "describe_tables", args: { names: ["Invoice"] } }] },
        { toolCalls: [{ name: "run_query", args: { sql: TOP_COUNTRIES } }] },
        (req) => ({ content: lastToolResult(req).includes("USA | 91") ? "The USA has the most invoices (91), then Canada (56) and Brazil (35)." : "unexpected" }),
      ],
      { schemaTokenBudget: 120 },
    );
    const answer = await result;
    expect(answer.answer).toBe("The USA has the most invoices (91), then Canada (56) and Brazil (35).");
    expect(answer.sql).toEqual([TOP_COUNTRIES]);
    expect(answer.result).toEqual({ columns: ["BillingCountry", "invoices"], rows: [["USA", 91], ["Canada", 56], ["Brazil", 35]], row_count: 3, truncated: false });
    expect(answer.steps).toBe(4);
    expect(fake.requests.map((r) => r.tools?.map((t) => t.function.name))).toEqual(Array(4).fill(["find_tables", "describe_tables", "run_query"]));
    // The schema in the prompt was partial, so the tool results are what told the model about Invoice.
    expect(systemPromptOf(fake.requests[0])).toMatch(/schema below is partial/);
    expect(lastToolResult(fake.requests[1])).toMatch(/^Invoice\(InvoiceId, CustomerId, .*BillingCountry/m);
    expect(lastToolResult(fake.requests[2])).toMatch(/^Invoice\(InvoiceId integer PK, /);
    expect(lastToolResult(fake.requests[2])).toMatch(/Invoice sample values: .*BillingCountry: '[^']+'/);
  });

  it("sends a database error back to the model, which corrects its query", async () => {
    const wrong = "SELECT Country, COUNT(*) FROM Invoices GROUP BY Country";
    const { fake, result } = await run([
      { toolCalls: [{ name: "run_query", args: { sql: wrong } }] },
      (req) => (lastToolResult(req).startsWith("ERROR:") ? { toolCalls: [{ name: "run_query", args: { sql: TOP_COUNTRIES } }] } : { content: "no error seen" }),
      { content: "USA leads with 91 invoices." },
    ]);
    const answer = await result;
    expect(lastToolResult(fake.requests[1])).toMatch(/^ERROR: .*no such table: Invoices/);
    expect(answer.sql).toEqual([wrong, TOP_COUNTRIES]);
    expect(answer.queries.map((q) => [q.ok, q.code])).toEqual([[false, "sql_failed"], [true, undefined]]);
    expect(answer.result?.rows[0]).toEqual(["USA", 91]);
    expect(answer.answer).toBe("USA leads with 91 invoices.");
  });

  it("answers bad tool arguments and unknown tools with ERROR text instead of failing", async () => {
    const { fake, result } = await run([
      { toolCalls: [{ name: "describe_tables", args: { tables: "Invoice" } }, { name: "drop_everything", args: {} }] },
      { content: "Sorry." },
    ], { schemaTokenBudget: 120 });
    await result;
    const [badArgs, unknown] = fake.requests[1]!.messages.filter((m) => m.role === "tool").map(textOf);
    expect(badArgs).toMatch(/^ERROR: invalid arguments for describe_tables/);
    expect(unknown).toMatch(/^ERROR: there is no tool named "drop_everything"/);
  });
});

describe("runAgent offers only what helps", () => {
  it("offers run_query alone when the whole schema is in the prompt, and the lookup tools when it is not", async () => {
    const whole = await run([{ content: "Fine." }]);
    await whole.result;
    expect(whole.fake.requests[0]!.tools!.map((t) => t.function.name)).toEqual(["run_query"]);
    const partial = await run([{ content: "Fine." }], { schemaTokenBudget: 120 });
    await partial.result;
    expect(partial.fake.requests[0]!.tools!.map((t) => t.function.name).sort()).toEqual(["describe_tables", "find_tables", "run_query"]);
  });
});

describe("runAgent bounds its work", () => {
  it("stops after maxSteps model calls with an honest answer and no further model call", async () => {
    const looping: FakeStep = { toolCalls: [{ name: "run_query", args: { sql: "SELECT nope FROM nowhere" } }] };
    const { fake, events, result } = await run(Array(10).fill(looping), { maxSteps: 3 });
    const answer = await result;
    expect(fake.requests).toHaveLength(3);
    expect(answer.steps).toBe(3);
    expect(answer.answer).toMatch(/^I could not finish within 3 steps; the last error was: .*no such table: nowhere/);
    // Two queries ran; the third request's tool call was never executed.
    expect(answer.sql).toEqual(["SELECT nope FROM nowhere", "SELECT nope FROM nowhere"]);
    expect(events.filter((e) => e.type === "answer_token")).toEqual([{ type: "answer_token", text: answer.answer }]);
  });
});

describe("runAgent streams its steps", () => {
  it("emits tool_call, sql, rows, the answer token by token, then done", async () => {
    const chunks = ["The ", "USA ", "leads ", "with ", "91."];
    const { events, result } = await run([
      { toolCalls: [{ name: "run_query", args: { sql: TOP_COUNTRIES } }] },
      { content: chunks.join(""), chunks },
    ]);
    const answer = await result;
    expect(events.map((e) => e.type)).toEqual(["tool_call", "sql", "rows", ...chunks.map(() => "answer_token"), "done"]);
    expect(events[0]).toEqual({ type: "tool_call", name: "run_query", args: { sql: TOP_COUNTRIES } });
    expect(events[2]).toMatchObject({ type: "rows", columns: ["BillingCountry", "invoices"], row_count: 3, truncated: false });
    expect(events.flatMap((e) => (e.type === "answer_token" ? [e.text] : []))).toEqual(chunks);
    expect(answer.answer).toBe("The USA leads with 91.");
  });

  it("reports a refused or failed statement as sql_error", async () => {
    const { events, result } = await run([{ toolCalls: [{ name: "run_query", args: { sql: "DELETE FROM Invoice" } }] }, { content: "Refused." }]);
    await result;
    expect(events.slice(0, 3)).toEqual([
      { type: "tool_call", name: "run_query", args: { sql: "DELETE FROM Invoice" } },
      { type: "sql", sql: "DELETE FROM Invoice" },
      { type: "sql_error", sql: "DELETE FROM Invoice", error: expect.stringMatching(/^refused by the read-only guard \(not_read_only\)/) },
    ]);
  });
});

describe("runAgent accounts for tokens", () => {
  it("sums the server's usage over every model call, asking for it on each stream", async () => {
    const { fake, result } = await run([
      { toolCalls: [{ name: "find_tables", args: { query: "artist" } }], usage: { prompt_tokens: 1200, completion_tokens: 17 } },
      { toolCalls: [{ name: "run_query", args: { sql: "SELECT COUNT(*) FROM Artist" } }], usage: { prompt_tokens: 1350, completion_tokens: 21 } },
      { content: "There are 275 artists.", usage: { prompt_tokens: 1500, completion_tokens: 6 } },
    ]);
    expect((await result).usage).toEqual({ prompt_tokens: 4050, completion_tokens: 44, total_tokens: 4094, estimated: false });
    for (const req of fake.requests) expect([req.stream, req.stream_options]).toEqual([true, { include_usage: true }]);
  });

  it("asks for plain completions when nobody reads the steps as they come, and sums their usage the same", async () => {
    const { fake, events, result } = await run(
      [
        { toolCalls: [{ name: "run_query", args: { sql: "SELECT COUNT(*) FROM Artist" } }], usage: { prompt_tokens: 1350, completion_tokens: 21 } },
        // A count of 0 is left out of a plain completion's usage metadata; it still adds up.
        { content: "There are 275 artists.", usage: { prompt_tokens: 1500, completion_tokens: 0 } },
      ],
      { onEvent: undefined },
    );
    const answer = await result;
    expect(answer.usage).toEqual({ prompt_tokens: 2850, completion_tokens: 21, total_tokens: 2871, estimated: false });
    expect(answer.answer).toBe("There are 275 artists.");
    expect(answer.result?.rows).toEqual([[275]]);
    expect(events).toEqual([]);
    for (const req of fake.requests) expect([req.stream ?? false, req.stream_options]).toEqual([false, undefined]);
    expect(fake.requests.map((r) => r.tools?.map((t) => t.function.name))).toEqual([["run_query"], ["run_query"]]);
  });
});

// The same failures whether the model's answer is streamed (SSE clients) or not (JSON clients).
describe.each([
  { path: "streamed", overrides: {} },
  { path: "plain", overrides: { onEvent: undefined } },
])("runAgent surfaces model server failures as typed errors ($path completions)", ({ path, overrides }) => {
  it("model_failed after an HTTP 500 and its one retry", async () => {
    const { fake, result } = await run([{ fail: "http500" }, { fail: "http500" }], overrides);
    const err = await expectDomainError(result, "model_failed");
    expect(err.message).toMatch(/HTTP 500/);
    expect(fake.requests).toHaveLength(2);
  });

  it("model_failed on a malformed body", async () => {
    const { fake, result } = await run([{ fail: "malformed" }, { fail: "malformed" }], overrides);
    await expectDomainError(result, "model_failed");
    // No chat completion is what that server answers: not asked again, streamed or not.
    expect(fake.requests).toHaveLength(1);
  });

  it("model_timeout when the server never answers", async () => {
    const started = Date.now();
    const { fake, result } = await run([{ fail: "hang" }, { fail: "hang" }], { ...overrides, timeoutMs: 300 });
    await expectDomainError(result, "model_timeout");
    expect(fake.requests).toHaveLength(2);
    expect(Date.now() - started).toBeLessThan(4000);
  });

  it("model_timeout when an answer goes silent midway", async () => {
    const started = Date.now();
    const { result } = await run([{ fail: "stall" }], { ...overrides, timeoutMs: 300 });
    await expectDomainError(result, "model_timeout");
    // A stream may be silent for one timeout; a plain answer gets the time of a request and its retry.
    expect(Date.now() - started).toBeLessThan(path === "streamed" ? 3000 : 6000);
  });

  it("passes the caller's abort through untranslated", async () => {
    const controller = new AbortController();
    const { result } = await run([{ fail: "hang" }], { ...overrides, signal: controller.signal, timeoutMs: 10_000 });
    setTimeout(() => controller.abort(), 100);
    const err = await result.then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(DomainError);
    expect(controller.signal.aborted).toBe(true);
  });
});

describe("runAgent tells the model where it is", () => {
  it("names the connector's real dialect in the system prompt, whatever the caller claims", async () => {
    const { fake, result } = await run([{ content: "ok" }], { dialect: "postgresql" });
    await result;
    const prompt = systemPromptOf(fake.requests[0]);
    expect(prompt).toMatch(/one SQLite database/);
    expect(prompt).toMatch(/Write SQL for SQLite exactly/);
    expect(prompt).not.toMatch(/PostgreSQL|MySQL/);
    expect(prompt).toMatch(/^Artist\(ArtistId integer PK, Name nvarchar\)$/m);
    expect(prompt).toMatch(/The schema below is complete/);
  });

  it("replays earlier turns of the conversation, with the SQL they ran", async () => {
    const history = [{ question: "How many artists are there?", answer: "There are 275 artists.", sql: ["SELECT COUNT(*) FROM Artist"] }];
    const { fake, result } = await run([{ content: "And 347 albums." }], { history, question: "And albums?" });
    await result;
    const messages = fake.requests[0]!.messages.map((m) => [m.role, textOf(m)]);
    expect(messages.slice(1)).toEqual([
      ["user", "How many artists are there?"],
      ["assistant", "There are 275 artists.\n\n[SQL run for this answer]\nSELECT COUNT(*) FROM Artist"],
      ["user", "And albums?"],
    ]);
  });
});

describe("a small context window (MODEL_CONTEXT_TOKENS)", () => {
  it("shrinks the schema, the rows the model sees and the history to fit, and says the schema is partial", async () => {
    const history = Array.from({ length: 10 }, (_, i) => ({ question: `Earlier question ${i}?`, answer: `Earlier answer ${i}. ${"detail ".repeat(40)}`, sql: [] }));
    const allTracks = "SELECT TrackId, Name FROM Track ORDER BY TrackId";
    const { fake, result } = await run(
      [
        { toolCalls: [{ name: "run_query", args: { sql: allTracks } }] },
        { toolCalls: [{ name: "run_query", args: { sql: `${allTracks} DESC` } }] },
        { toolCalls: [{ name: "run_query", args: { sql: allTracks.replace("TrackId, Name", "Name, Composer") } }] },
        { content: "Many tracks." },
      ],
      { history, question: "List the tracks", contextTokens: 2048 },
    );
    const answer = await result;
    // The API still gets its rows; the model saw a few.
    expect(answer.result?.row_count).toBe(500);
    const system = systemPromptOf(fake.requests[0]);
    expect(system).toMatch(/schema below is partial/);
    expect(fake.requests[0]!.tools?.map((t) => t.function.name)).toEqual(["find_tables", "describe_tables", "run_query"]);
    const shown = lastToolResult(fake.requests[1]);
    expect(Number(/\((\d+) of more than \d+ rows shown/.exec(shown)?.[1] ?? /\((\d+) of \d+ rows shown/.exec(shown)?.[1])).toBeLessThan(50);
    const turns = fake.requests[0]!.messages.filter((m) => m.role === "user").length - 1;
    expect(turns).toBeGreaterThan(0);
    expect(turns).toBeLessThan(10);
    // Only the newest turns are kept.
    expect(textOf(fake.requests[0]!.messages.at(-2))).toMatch(/^Earlier answer 9\./);
    // Every request fits the window, by the same estimate the budgets use: older results are
    // left out once the steps' results no longer fit, the newest always stays.
    for (const request of fake.requests) expect(JSON.stringify(request.messages).length / 3.5).toBeLessThan(2048);
    const last = toolResultsOf(fake.requests[3]);
    expect(last[0]).toBe("(an earlier result, left out to fit the model's context window)");
    expect(last.at(-1)).toMatch(/^Result rows/);
  });
});

describe("model configuration and prompts", () => {
  it("needs a base URL or an API key", () => {
    expect(isModelConfigured({})).toBe(false);
    expect(isModelConfigured({ baseUrl: "http://127.0.0.1:1/v1" })).toBe(true);
    expect(isModelConfigured({ apiKey: "sk-test" })).toBe(true);
    expect(() => createChatModel({ model: "m", temperature: 0, timeoutMs: 1000 })).toThrow(DomainError);
  });

  it("loads the shipped prompts and names a missing file or placeholder", () => {
    expect(loadPrompts().sqlAgent).toMatch(/\{\{schema\}\}/);
    const empty = mkdtempSync(path.join(tmpdir(), "pulse-prompts-"));
    try {
      expect(() => loadPrompts(empty)).toThrow(/sql-agent\.md could not be read/);
      writeFileSync(path.join(empty, "sql-agent.md"), "{{dialect}} {{quote}} {{schema}} {{schema_scope}} {{max_rows}}");
      expect(() => loadPrompts(empty)).toThrow(/lacks placeholder\(s\): \{\{max_steps\}\}/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
