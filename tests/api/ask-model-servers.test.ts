// POST /ask against each model server people run, as tests/support/model-servers.ts plays it
// (tools ignored or refused, calls written as text, no streamed tools, no usage): the same
// Chinook questions get the right rows, as JSON and as server-sent events, in all three dialects.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import type { Dialect } from "../../src/connectors/types.js";
import { loadChinookMaria, loadChinookPostgres } from "../support/chinook.js";
import { HOSTILE_CORPUS, type HostileEntry } from "../support/hostile-corpus.js";
import { startFakeOpenAI, type FakeOpenAI } from "../support/fake-openai.js";
import { createHarness, type Harness } from "../support/harness.js";
import { callAsText, questionOf, scriptedModel, SERVERS, type ServerProfile } from "../support/model-servers.js";
import { MARIADB, PG } from "../support/services.js";
import { sqliteTarget } from "../support/targets.js";

interface Question {
  question: string;
  sql: Record<Dialect, string>;
  rows: string[][];
}

const PASCAL = {
  albums: "SELECT COUNT(*) AS albums FROM Album",
  countries: "SELECT BillingCountry, COUNT(*) AS invoices FROM Invoice GROUP BY BillingCountry ORDER BY invoices DESC, BillingCountry LIMIT 3",
  artist: "SELECT ar.Name, COUNT(*) AS albums FROM Artist ar JOIN Album al ON al.ArtistId = ar.ArtistId GROUP BY ar.ArtistId, ar.Name ORDER BY albums DESC LIMIT 1",
};

const QUESTIONS: Question[] = [
  {
    question: "How many albums are there?",
    sql: { sqlite: PASCAL.albums, mysql: PASCAL.albums, postgresql: "SELECT COUNT(*) AS albums FROM album" },
    rows: [["347"]],
  },
  {
    question: "Which three countries have the most invoices?",
    sql: {
      sqlite: PASCAL.countries,
      mysql: PASCAL.countries,
      postgresql: "SELECT billing_country, COUNT(*) AS invoices FROM invoice GROUP BY billing_country ORDER BY invoices DESC, billing_country LIMIT 3",
    },
    rows: [["USA", "91"], ["Canada", "56"], ["Brazil", "35"]],
  },
  {
    question: "Which artist has the most albums?",
    sql: {
      sqlite: PASCAL.artist,
      mysql: PASCAL.artist,
      postgresql: "SELECT ar.name, COUNT(*) AS albums FROM artist ar JOIN album al ON al.artist_id = ar.artist_id GROUP BY ar.artist_id, ar.name ORDER BY albums DESC LIMIT 1",
    },
    rows: [["Iron Maiden", "21"]],
  },
];

const AZURE_KEY = "azure-test-key-7c1f";

interface Case {
  name: string;
  profile: ServerProfile;
  dialect: Dialect;
  env: Record<string, string>;
  baseUrl?: (fakeBaseUrl: string) => string;
  /** What this server needed from Pulse, checked on the requests it received. */
  check?: (fake: FakeOpenAI, logLines: string[]) => void;
  /** Whether Pulse had to count tokens itself for a streamed question. */
  estimatesStreamUsage?: boolean;
}

const withTools = (fake: FakeOpenAI) => fake.requests.filter((r) => r.tools?.length);

const CASES: Case[] = [
  {
    name: "OpenAI",
    profile: SERVERS.openai,
    dialect: "sqlite",
    env: {},
    check: (fake) => expect(fake.requests.some((r) => r.stream && r.tools?.length)).toBe(true),
  },
  {
    name: "Azure OpenAI (deployment URL with api-version, api-key header)",
    profile: SERVERS.openai,
    dialect: "postgresql",
    env: { MODEL_SERVER: "azure", OPENAI_API_KEY: AZURE_KEY },
    baseUrl: (base) => `${base.replace(/\/v1$/, "")}/openai/deployments/pulse-gpt?api-version=2024-10-21`,
    check: (fake) => {
      expect(fake.requestUrls.every((url) => url === "/openai/deployments/pulse-gpt/chat/completions?api-version=2024-10-21")).toBe(true);
      expect(fake.requestHeaders.every((h) => h["api-key"] === AZURE_KEY)).toBe(true);
    },
  },
  {
    name: "Ollama, a model without tool support",
    profile: SERVERS.ollama,
    dialect: "mysql",
    env: { MODEL_SERVER: "ollama" },
    // Refused once, then the text protocol (for REFUSAL_HOLDS_MS): one request with tools in the process,
    // and one warning that says so.
    check: (fake, logs) => {
      expect(withTools(fake)).toHaveLength(1);
      const switched = logs.filter((l) => l.includes("switching to the text protocol"));
      expect(switched).toHaveLength(1);
      expect(JSON.parse(switched[0]!)).toMatchObject({ level: 40, model_server: "ollama", refusal: expect.stringContaining("does not support tools") });
    },
  },
  {
    name: "llama.cpp llama-server, calls left in the text as <tool_call> tags after reasoning",
    profile: SERVERS.llamacpp,
    dialect: "sqlite",
    env: { MODEL_SERVER: "llamacpp" },
    check: (fake) => expect(withTools(fake).every((r) => r.tool_choice === "auto")).toBe(true),
  },
  {
    name: "llama-cpp-python (chatml-function-calling)",
    profile: SERVERS["llama-cpp-python"],
    dialect: "postgresql",
    env: { MODEL_SERVER: "llama-cpp-python" },
    // tool_choice "auto" or the tools are dropped; never streamed with tools ("Automatic
    // streaming tool choice is not supported"); tool results as user messages (no `tool` role).
    check: (fake) => {
      expect(withTools(fake).length).toBeGreaterThan(0);
      expect(withTools(fake).every((r) => r.tool_choice === "auto" && !r.stream)).toBe(true);
      expect(fake.requests.every((r) => r.messages.every((m) => m.role !== "tool"))).toBe(true);
    },
  },
  {
    name: "llama-cpp-python left at MODEL_SERVER=auto (tools dropped, no usage in streams)",
    profile: SERVERS["llama-cpp-python"],
    dialect: "sqlite",
    env: {},
    estimatesStreamUsage: true,
  },
  {
    name: "vLLM without --enable-auto-tool-choice",
    profile: SERVERS.vllm,
    dialect: "mysql",
    env: { MODEL_SERVER: "vllm" },
    check: (fake) => expect(withTools(fake)).toHaveLength(1),
  },
  {
    name: "LM Studio, default tool use ([TOOL_REQUEST] in the text)",
    profile: SERVERS.lmstudio,
    dialect: "postgresql",
    env: { MODEL_SERVER: "lmstudio" },
  },
  {
    name: "LiteLLM, a model that spells its call out as JSON",
    profile: SERVERS.litellm,
    dialect: "sqlite",
    env: { MODEL_SERVER: "litellm" },
  },
  {
    name: "the text protocol (MODEL_TOOLS=text)",
    profile: SERVERS.vllm,
    dialect: "mysql",
    env: { MODEL_SERVER: "vllm", MODEL_TOOLS: "text" },
    check: (fake) => {
      expect(withTools(fake)).toHaveLength(0);
      expect(fake.requests.every((r) => /reply with one SQL statement in a fenced block/.test(String(r.messages[0]!.content)))).toBe(true);
    },
  },
];

const targets: Partial<Record<Dialect, () => Promise<Record<string, unknown>>>> = {};
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  const [pgDb, mariaDb] = await Promise.all([loadChinookPostgres(), loadChinookMaria()]);
  cleanups.push(() => pgDb.drop(), () => mariaDb.drop());
  targets.postgresql = async () => ({ db_type: "postgresql", host: PG.host, port: PG.port, database_name: pgDb.name, username: PG.user, db_password: "unused-with-trust" });
  targets.mysql = async () => ({ db_type: "mysql", host: MARIADB.host, port: MARIADB.port, database_name: mariaDb.name, username: MARIADB.user, db_password: "" });
}, 120_000);

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

const rowsAsText = (rows: unknown[][]) => rows.map((row) => row.map(String));

/** The hostile corpus of a dialect, but for the few entries that are only whitespace tricks
 * (leading or trailing blanks, the empty statement): a model's call written as text is trimmed,
 * so those are the guard's own tests' to replay. */
const hostileOf = (dialect: Dialect): HostileEntry[] => HOSTILE_CORPUS.filter((e) => e.dialect === dialect && e.sql.trim() === e.sql && e.sql !== "");
/** /ask requests in flight at once while replaying the corpus. */
const HOSTILE_CONCURRENCY = 6;
const hostileQuestion = (i: number) => `Hostile statement number ${i}?`;

describe.each(CASES)("/ask with $name", (c) => {
  let fake: FakeOpenAI;
  let h: Harness;
  let user: { token: string };

  beforeAll(async () => {
    const hostile = hostileOf(c.dialect);
    const sqlFor = (question: string) =>
      QUESTIONS.find((q) => q.question === question)?.sql[c.dialect] ?? hostile.find((_, i) => hostileQuestion(i) === question)?.sql ?? "SELECT 1";
    fake = await startFakeOpenAI(Array.from({ length: 1_000 }, () => scriptedModel(c.profile, sqlFor)), c.profile.options);
    h = await createHarness({
      env: { OPENAI_BASE_URL: c.baseUrl ? c.baseUrl(fake.baseUrl) : fake.baseUrl, OPENAI_MODEL: "local-model", OPENAI_TIMEOUT_MS: "5000", ASK_PER_MINUTE: "1000", ASK_MAX_CONCURRENT: "100", ...c.env },
    });
    const registered = await h.newUser();
    const body = c.dialect === "sqlite" ? (await sqliteTarget(h.sqliteRoot)).body : await targets[c.dialect]!();
    const added = await h.call("POST", "/databases/add_db_connection", { token: registered.token, json: body });
    expect(added.status).toBe(201);
    const connected = await h.call("POST", `/databases/connect_db/${added.body.db_connection.id}`, { token: registered.token });
    expect(connected.status).toBe(200);
    user = registered;
  }, 60_000);

  afterAll(async () => {
    await h?.close();
    await fake?.close();
  });

  // First, so that the questions after it show the data unchanged.
  it("refuses the whole hostile corpus written the way this server's model writes calls", { timeout: 120_000 }, async () => {
    const hostile = hostileOf(c.dialect);
    expect(hostile.length).toBeGreaterThanOrEqual(60);
    const outcomes: unknown[] = [];
    // The first alone: a server that refuses tools teaches Pulse to stop sending them once.
    for (let start = 0; start < hostile.length; start += start === 0 ? 1 : HOSTILE_CONCURRENCY) {
      const batch = hostile.slice(start, start === 0 ? 1 : start + HOSTILE_CONCURRENCY);
      const answers = await Promise.all(
        batch.map((_, k) => h.call("POST", "/ask", { token: user.token, json: { question: hostileQuestion(start + k), thread_id: `hostile-${start + k}` } })),
      );
      outcomes.push(...answers.map((res) => ({ status: res.status, statements: res.body.statements, result: res.body.result })));
    }
    // Compared whole, so a failure names every statement that got through or was read differently.
    expect(outcomes).toEqual(
      hostile.map((entry) => ({ status: 200, statements: [{ sql: entry.sql, outcome: "refused", rule: entry.rule, error: expect.stringMatching(/read-only guard/) }], result: null })),
    );
  });

  it.each(QUESTIONS)("answers $question with the right rows, as JSON", async (q) => {
    const res = await h.call("POST", "/ask", { token: user.token, json: { question: q.question, thread_id: `json-${q.question}` } });
    expect(res.status).toBe(200);
    expect(res.body.statements).toEqual([{ sql: q.sql[c.dialect], outcome: "ok", row_count: q.rows.length }]);
    expect(rowsAsText(res.body.result.rows)).toEqual(q.rows);
    expect(res.body.answer).toBe(`From the data: ${q.rows[0]!.join(" | ")}`);
    expect(res.body.usage.total_tokens).toBeGreaterThan(0);
  });

  it.each(QUESTIONS)("answers $question with the right rows, as server-sent events", async (q) => {
    const res = await h.call("POST", "/ask", { token: user.token, json: { question: q.question, thread_id: `sse-${q.question}` }, headers: { accept: "text/event-stream" } });
    expect(res.status).toBe(200);
    const events = [...res.text.matchAll(/^event: (\S+)$/gm)].map((m) => m[1]);
    expect(events.filter((e) => e === "sql")).toHaveLength(1);
    expect(events.slice(-2)).toEqual(["result", "done"]);
    const result = JSON.parse(/event: result\ndata: (.*)/.exec(res.text)![1]!);
    expect(rowsAsText(result.result.rows)).toEqual(q.rows);
    expect(result.sql).toEqual([q.sql[c.dialect]]);
    // The answer reached the client (whole or token by token), never the call written as text.
    const tokens = [...res.text.matchAll(/^event: answer_token\ndata: (.*)$/gm)].map((m) => (JSON.parse(m[1]!) as { text: string }).text).join("");
    expect(tokens).toBe(`From the data: ${q.rows[0]!.join(" | ")}`);
    expect(result.usage.estimated).toBe(c.estimatesStreamUsage === true);
  });

  it("needed from Pulse what this server needs", () => {
    expect(fake.requests.length).toBeGreaterThan(0);
    expect(fake.requests.every((r) => questionOf(r) !== "")).toBe(true);
    c.check?.(fake, h.logs.join("").split("\n"));
  });
});

describe("/ask when a call written as text is cut off", () => {
  let fake: FakeOpenAI;
  let h: Harness;
  beforeAll(async () => {
    const sql = PASCAL.albums;
    fake = await startFakeOpenAI([
      // max_tokens ran out inside the call: running the part that arrived would run another statement.
      { content: `<tool_call>\n{"name": "run_query", "arguments": {"sql": "SELECT COUNT(*) AS albums FROM Al`, finishReason: "length" },
      { content: `Let me try again.\n\`\`\`sql\nSELECT COUNT(*) AS albums FROM Al`, finishReason: "length" },
      { content: callAsText("json", sql) },
      { content: "There are 347 albums." },
    ]);
    h = await createHarness({ env: { OPENAI_BASE_URL: fake.baseUrl, OPENAI_MODEL: "local-model", OPENAI_TIMEOUT_MS: "5000", MODEL_SERVER: "llamacpp" } });
  }, 60_000);
  afterAll(async () => {
    await h?.close();
    await fake?.close();
  });

  it("runs nothing until the model sends a whole call, and tells it why", async () => {
    const user = await h.newConnectedUser();
    const res = await h.call("POST", "/ask", { token: user.token, json: { question: "How many albums are there?" } });
    expect(res.status).toBe(200);
    expect(res.body.statements).toEqual([{ sql: PASCAL.albums, outcome: "ok", row_count: 1 }]);
    expect(res.body.result.rows).toEqual([[347]]);
    expect(res.body.answer).toBe("There are 347 albums.");
    const told = (i: number) => String(fake.requests[i]!.messages.at(-1)!.content);
    expect(told(1)).toMatch(/^\[run_query result\]\nERROR: the arguments of run_query were cut off: the <tool_call> was never closed, so nothing was run\. You sent: .*\. Send one whole ```sql block \(or one whole call\) again\./);
    expect(told(2)).toMatch(/^\[run_query result\]\nERROR: the arguments of run_query were cut off: the ```sql block was never closed, so nothing was run/);
  });
});
