// Prompt tokens per question: Pulse's agent against LangChain's own SQL agent, both driven by the
// same scripted OpenAI-compatible server (tests/support/fake-openai.ts) replaying the gold SQL:
// first a call of the agent's query tool with the gold SQL, then a final answer. Tokens are
// counted as the server sees them: o200k (js-tiktoken, offline) of every message of every request
// (JSON, as sent) plus the request's tool definitions (JSON), summed per question.
// Cases: Chinook (12 hand-written questions, gold SQL checked against the file), a seeded sample
// of Spider dev questions on their own SQLite databases, and the same on copies of those databases
// padded to 1,000 tables (real tables and rows kept, distractor tables with 3 made-up rows each).
// Run: npx tsx bench/ask-tokens.ts          (SAMPLE=50 SEED=42 PAD_SEED=42 TABLES=1000)

import { randomBytes } from "node:crypto";
import { copyFileSync, rmSync } from "node:fs";
import path from "node:path";

import { SQL_PREFIX, SqlToolkit } from "@langchain/classic/agents/toolkits/sql";
import { SqlDatabase } from "@langchain/classic/sql_db";
import { HumanMessage } from "@langchain/core/messages";
import type { StructuredToolInterface } from "@langchain/core/tools";
import { ChatOpenAI } from "@langchain/openai";
import Database from "better-sqlite3";
import { Tiktoken } from "js-tiktoken/lite";
import o200kBase from "js-tiktoken/ranks/o200k_base";
import { createAgent, tool } from "langchain";
import { DataSource } from "typeorm";
import { z } from "zod";

import { runAgent } from "../agents/graph.js";
import { createChatModel } from "../agents/model.js";
import { loadPrompts } from "../agents/prompts.js";
import { buildSchemaIndex, schemaContext } from "../agents/schema-context.js";
import { createBudget } from "../src/connectors/budget.js";
import { loadGuard } from "../src/connectors/guard/index.js";
import { GuardedConnector } from "../src/connectors/guarded.js";
import { openDriver } from "../src/connectors/open.js";
import type { SchemaSnapshot } from "../src/connectors/types.js";
import { loadConfig } from "../src/config.js";
import { startFakeOpenAI, type ChatRequest, type FakeReply } from "../tests/support/fake-openai.js";
import { CHINOOK_SQLITE, SPIDER_SQLITE_DIR, introspectSqliteFile, spiderQuestions, spiderSnapshots } from "../tests/support/schema-fixtures.js";
import { seededRandom } from "../tests/support/random.js";
import { createTableSql, padSchema, quoteName, sampleValue } from "../tests/support/schema-padding.js";
import { machine, median, percentile, tempDir } from "./lib.js";

const SAMPLE = Number(process.env.SAMPLE ?? 50);
const SEED = Number(process.env.SEED ?? 42);
const PAD_SEED = Number(process.env.PAD_SEED ?? 42);
const TABLES = Number(process.env.TABLES ?? 1000);

// ---- Chinook questions, gold SQL checked against the file below ----------------------------

const CHINOOK: { question: string; sql: string }[] = [
  {
    question: "Which 5 artists have the most albums?",
    sql: "SELECT ar.Name, COUNT(*) AS albums FROM Album al JOIN Artist ar ON ar.ArtistId = al.ArtistId GROUP BY ar.ArtistId ORDER BY albums DESC LIMIT 5",
  },
  {
    question: "What were total sales per billing country in 2025?",
    sql: "SELECT BillingCountry, ROUND(SUM(Total), 2) AS sales FROM Invoice WHERE strftime('%Y', InvoiceDate) = '2025' GROUP BY BillingCountry ORDER BY sales DESC",
  },
  {
    question: "Which genre has the most tracks?",
    sql: "SELECT g.Name, COUNT(*) AS tracks FROM Track t JOIN Genre g ON g.GenreId = t.GenreId GROUP BY g.GenreId ORDER BY tracks DESC LIMIT 1",
  },
  {
    question: "Which employee supports the most customers?",
    sql: "SELECT e.FirstName, e.LastName, COUNT(*) AS customers FROM Customer c JOIN Employee e ON e.EmployeeId = c.SupportRepId GROUP BY e.EmployeeId ORDER BY customers DESC LIMIT 1",
  },
  {
    question: "Top 5 playlists by number of tracks",
    sql: "SELECT p.Name, COUNT(*) AS tracks FROM PlaylistTrack pt JOIN Playlist p ON p.PlaylistId = pt.PlaylistId GROUP BY p.PlaylistId ORDER BY tracks DESC LIMIT 5",
  },
  {
    question: "Which genre has the longest tracks on average?",
    sql: "SELECT g.Name, ROUND(AVG(t.Milliseconds) / 60000.0, 1) AS avg_minutes FROM Track t JOIN Genre g ON g.GenreId = t.GenreId GROUP BY g.GenreId ORDER BY avg_minutes DESC LIMIT 1",
  },
  {
    question: "Who are the top 5 customers by total spending?",
    sql: "SELECT c.FirstName, c.LastName, ROUND(SUM(i.Total), 2) AS spent FROM Invoice i JOIN Customer c ON c.CustomerId = i.CustomerId GROUP BY c.CustomerId ORDER BY spent DESC LIMIT 5",
  },
  {
    question: "List the tracks of AC/DC with their album",
    sql: "SELECT t.Name AS track, al.Title AS album FROM Track t JOIN Album al ON al.AlbumId = t.AlbumId JOIN Artist ar ON ar.ArtistId = al.ArtistId WHERE ar.Name = 'AC/DC' ORDER BY al.Title, t.TrackId",
  },
  {
    question: "Which 5 artists earned the most from track sales?",
    sql: "SELECT ar.Name, ROUND(SUM(il.UnitPrice * il.Quantity), 2) AS revenue FROM InvoiceLine il JOIN Track t ON t.TrackId = il.TrackId JOIN Album al ON al.AlbumId = t.AlbumId JOIN Artist ar ON ar.ArtistId = al.ArtistId GROUP BY ar.ArtistId ORDER BY revenue DESC LIMIT 5",
  },
  {
    question: "What were the monthly sales totals in 2024?",
    sql: "SELECT strftime('%Y-%m', InvoiceDate) AS month, ROUND(SUM(Total), 2) AS sales FROM Invoice WHERE InvoiceDate >= '2024-01-01' AND InvoiceDate < '2025-01-01' GROUP BY month ORDER BY month",
  },
  {
    question: "Which employees report to the general manager?",
    sql: "SELECT e.FirstName, e.LastName, e.Title FROM Employee e JOIN Employee m ON m.EmployeeId = e.ReportsTo WHERE m.Title = 'General Manager'",
  },
  {
    question: "How many customers are there in each country with more than 3 customers?",
    sql: "SELECT Country, COUNT(*) AS customers FROM Customer GROUP BY Country HAVING COUNT(*) > 3 ORDER BY customers DESC",
  },
];

/** Each gold statement runs on the file and returns rows; the row counts are printed. */
function checkChinookGold(): number[] {
  const db = new Database(CHINOOK_SQLITE, { readonly: true, fileMustExist: true });
  try {
    return CHINOOK.map(({ question, sql }) => {
      const rows = db.prepare(sql).all();
      if (rows.length === 0) throw new Error(`gold SQL of "${question}" returns no rows`);
      return rows.length;
    });
  } finally {
    db.close();
  }
}

// ---- token counting, as the fake server sees each request ----------------------------------

const o200k = new Tiktoken(o200kBase);
const tokenCache = new Map<string, number>();
const tokens = (text: string): number => {
  let n = tokenCache.get(text);
  if (n === undefined) tokenCache.set(text, (n = o200k.encode(text).length));
  return n;
};

interface RequestSize {
  total: number;
  messages: number;
  tools: number;
  system: number;
}

function sizeOf(request: ChatRequest): RequestSize {
  const system = request.messages.filter((m) => m.role === "system").reduce((n, m) => n + tokens(JSON.stringify(m)), 0);
  const messages = request.messages.reduce((n, m) => n + tokens(JSON.stringify(m)), 0);
  const tools = tokens(JSON.stringify(request.tools ?? []));
  return { total: messages + tools, messages, tools, system };
}

// ---- the fake model: run the gold SQL through the agent's query tool, then answer -------------

const QUERY_TOOLS = ["run_query", "execute_sql", "query-sql", "sql_db_query"];
let goldSql = "";

function replay(request: ChatRequest): FakeReply {
  if (request.messages.at(-1)?.role === "tool") return { content: "Here is the answer, from the query's result." };
  const queryTool = request.tools?.find((t) => QUERY_TOOLS.includes(t.function.name));
  if (!queryTool) throw new Error(`no query tool among ${request.tools?.map((t) => t.function.name).join(", ")}`);
  const properties = Object.keys((queryTool.function.parameters as { properties?: Record<string, unknown> } | undefined)?.properties ?? { input: 1 });
  return { toolCalls: [{ name: queryTool.function.name, args: { [properties[0] ?? "input"]: goldSql } }] };
}

const fake = await startFakeOpenAI(Array.from({ length: 100_000 }, () => replay));

// Nothing here may reach beyond 127.0.0.1 (LangChain could fetch tiktoken ranks, LangSmith...).
const realFetch = globalThis.fetch;
const offline: string[] = [];
globalThis.fetch = ((input: string | URL | Request, init?: RequestInit) => {
  const url = input instanceof Request ? input.url : String(input);
  if (!url.startsWith("http://127.0.0.1")) {
    offline.push(url);
    return Promise.reject(new Error(`bench is offline: ${url}`));
  }
  return realFetch(input, init);
}) as typeof fetch;

// ---- the agents ------------------------------------------------------------------------------

interface Outcome {
  /** The tool's reply to the gold SQL reported an error (refused or failed). */
  queryError: boolean;
}

interface Agent {
  name: string;
  ask(question: string): Promise<Outcome>;
  /** The schema text the first request's system message carries for this question. */
  schemaText(question: string): string;
  close(): Promise<void>;
}

const config = loadConfig({ DATA_DIR: tempDir("pulse-bench-tokens-cfg-"), JWT_SECRET: randomBytes(32).toString("hex"), SECRETS_KEY: randomBytes(32).toString("hex") });
const prompts = loadPrompts();

/** Pulse: agents/graph.ts runAgent, exactly as src/services/ask.ts calls it, with the service's default settings. */
async function pulseAgent(file: string): Promise<Agent> {
  const driver = await openDriver(
    { dialect: "sqlite", host: "", port: 0, database: path.basename(file), username: "", password: "", ssl: false, connectTimeoutMs: 5000, filePath: file },
    { maxConnections: 1, idleTimeoutMs: 60_000 },
  );
  const connector = new GuardedConnector(
    1,
    1,
    "chinook",
    driver,
    config.query,
    createBudget({ concurrency: 4, maxWaiting: 32, perMinute: 10_000_000, maxWaitMs: 5000 }),
  );
  const index = await buildSchemaIndex(await connector.schema());
  const model = createChatModel({ ...config.openai, baseUrl: fake.baseUrl, model: "fake-model" });
  return {
    name: "Pulse",
    async ask(question) {
      const result = await runAgent(model, {
        question,
        history: [],
        dialect: connector.dialect,
        connector,
        index,
        maxSteps: config.agent.maxSteps,
        maxRowsToModel: config.agent.rowsToModel,
        apiMaxRows: config.query.maxRows,
        schemaTokenBudget: config.agent.schemaTokens,
        prompts,
      });
      return { queryError: !result.queries[0]?.ok };
    },
    schemaText: (question) => schemaContext(index, question, { maxTokens: config.agent.schemaTokens }).text,
    close: () => connector.close(),
  };
}

/** The model LangChain's agents use: @langchain/openai's ChatOpenAI against the same fake server. */
const langchainModel = () => new ChatOpenAI({ model: "fake-model", temperature: 0, apiKey: "unused", configuration: { baseURL: fake.baseUrl }, maxRetries: 0 });

async function sqlDatabase(file: string): Promise<{ db: SqlDatabase; source: DataSource }> {
  const source = new DataSource({ type: "better-sqlite3", database: file, readonly: true });
  await source.initialize();
  return { db: await SqlDatabase.fromDataSourceParams({ appDataSource: source }), source };
}

// The tutorial's read-only gate for execute_sql: one statement, SELECT only, no DML/DDL words,
// LIMIT 5 appended when the statement does not end with a LIMIT.
const DENY = /\b(INSERT|UPDATE|DELETE|ALTER|DROP|CREATE|REPLACE|TRUNCATE)\b/i;
const LIMIT_TAIL = /\blimit\b\s+\d+(\s*,\s*\d+)?\s*;?\s*$/i;
function tutorialSanitize(input: string): string {
  let q = input.trim();
  const semicolons = [...q].filter((c) => c === ";").length;
  if (semicolons > 1 || (q.endsWith(";") && q.slice(0, -1).includes(";"))) throw new Error("multiple statements are not allowed.");
  q = q.replace(/;+\s*$/g, "").trim();
  if (!q.toLowerCase().startsWith("select")) throw new Error("Only SELECT statements are allowed");
  if (DENY.test(q)) throw new Error("DML/DDL detected. Only read-only queries are permitted.");
  return LIMIT_TAIL.test(q) ? q : `${q} LIMIT 5`;
}

/**
 * LangChain's JS SQL-agent tutorial ("Build a SQL agent", docs.langchain.com, the SqlDatabase
 * version): createAgent, one execute_sql tool over SqlDatabase.run, and a system prompt holding
 * the whole SqlDatabase.getTableInfo() between a role line and the tutorial's eight rules (the
 * rules restated here in our own words, at the same length).
 */
async function tutorialAgent(file: string, tableInfo: string): Promise<Agent> {
  const { db, source } = await sqlDatabase(file);
  const executeSql = tool(
    async ({ query }) => {
      const result = await db.run(tutorialSanitize(query));
      return typeof result === "string" ? result : JSON.stringify(result, null, 2);
    },
    {
      name: "execute_sql",
      description: "Execute a READ-ONLY SQLite SELECT query and return results.",
      schema: z.object({ query: z.string().describe("SQLite SELECT query to execute (read-only).") }),
    },
  );
  const systemPrompt = `You are a careful SQLite analyst.

Authoritative schema (do not invent columns/tables):
${tableInfo}

Rules:
- Reason step by step.
- To get data, call the \`execute_sql\` tool with ONE SELECT statement.
- Read only; never INSERT/UPDATE/DELETE/ALTER/DROP/CREATE/REPLACE/TRUNCATE.
- Return at most 5 rows unless the user explicitly asks for more.
- When the tool returns 'Error:', fix the SQL and retry.
- Make at most 5 attempts.
- After 5 unsuccessful attempts, tell the user.
- Name the columns you need; avoid SELECT *.
`;
  const agent = createAgent({ model: langchainModel(), tools: [executeSql], systemPrompt });
  return {
    name: "LangChain tutorial agent",
    async ask(question) {
      const out = await agent.invoke({ messages: [new HumanMessage(question)] });
      const toolReply = out.messages.find((m) => m.getType() === "tool");
      return { queryError: !toolReply || /error/i.test(String(toolReply.content).slice(0, 200)) };
    },
    schemaText: () => tableInfo,
    close: () => source.destroy(),
  };
}

/**
 * The SqlToolkit of @langchain/classic (query-sql, info-sql, list-tables-sql, query-checker) in
 * createAgent, with the toolkit's own SQL_PREFIX (dialect sqlite, top_k 10) followed by
 * getTableInfo(), the schema in the prompt as the tutorial does.
 */
async function toolkitAgent(file: string, tableInfo: string): Promise<Agent> {
  const { db, source } = await sqlDatabase(file);
  const model = langchainModel();
  const toolkit = new SqlToolkit(db, model);
  const prefix = SQL_PREFIX.replace("{dialect}", toolkit.dialect).replace("{top_k}", "10");
  const agent = createAgent({ model, tools: toolkit.getTools() as StructuredToolInterface[], systemPrompt: `${prefix}\n\n${tableInfo}` });
  return {
    name: "LangChain SqlToolkit agent",
    async ask(question) {
      const out = await agent.invoke({ messages: [new HumanMessage(question)] });
      const toolReply = out.messages.find((m) => m.getType() === "tool");
      return { queryError: !toolReply || /error/i.test(String(toolReply.content).slice(0, 200)) };
    },
    schemaText: () => tableInfo,
    close: () => source.destroy(),
  };
}

async function tableInfoOf(file: string): Promise<string> {
  const { db, source } = await sqlDatabase(file);
  try {
    return await db.getTableInfo();
  } finally {
    await source.destroy();
  }
}

// ---- padded copies of the Spider databases ---------------------------------------------------

/** A copy of `source` with distractor tables (3 made-up rows each) up to `TABLES` tables. */
function paddedCopy(source: string, target: string): void {
  copyFileSync(source, target);
  const real: SchemaSnapshot = introspectSqliteFile(source);
  const existing = new Set(real.tables.map((t) => t.name));
  const db = new Database(target);
  try {
    db.pragma("foreign_keys = OFF");
    db.exec("BEGIN");
    for (const t of padSchema(real, TABLES, PAD_SEED).tables) {
      if (existing.has(t.name)) continue;
      db.exec(createTableSql(t));
      const insert = db.prepare(`INSERT INTO ${quoteName(t.name)} VALUES (${t.columns.map(() => "?").join(", ")})`);
      for (const i of [1, 2, 3]) insert.run(...t.columns.map((c) => sampleValue(c.name, c.type, i)));
    }
    db.exec("COMMIT");
  } finally {
    db.close();
  }
}

// ---- measuring ---------------------------------------------------------------------------------

interface PerQuestion {
  total: number;
  first: number;
  firstSystem: number;
  firstTools: number;
  firstSchema: number;
  requests: number;
  queryError: boolean;
}

async function measure(agent: Agent, questions: { question: string; sql: string }[]): Promise<PerQuestion[]> {
  const out: PerQuestion[] = [];
  for (const q of questions) {
    goldSql = q.sql;
    const before = fake.requests.length;
    const outcome = await agent.ask(q.question);
    // Requests are dropped once counted: padded LangChain prompts are ~1.7 MB each.
    const sizes = fake.requests.splice(before).map(sizeOf);
    if (sizes.length === 0) throw new Error(`${agent.name}: no model request for "${q.question}"`);
    out.push({
      total: sizes.reduce((n, s) => n + s.total, 0),
      first: sizes[0]!.total,
      firstSystem: sizes[0]!.system,
      firstTools: sizes[0]!.tools,
      firstSchema: tokens(agent.schemaText(q.question)),
      requests: sizes.length,
      queryError: outcome.queryError,
    });
  }
  return out;
}

interface CaseResult {
  label: string;
  questions: number;
  byAgent: Map<string, PerQuestion[]>;
}

type AgentFactory = (file: string, tableInfo: string) => Promise<Agent>;
const FACTORIES: [string, AgentFactory][] = [
  ["Pulse", (file) => pulseAgent(file)],
  ["LangChain tutorial agent", tutorialAgent],
  ["LangChain SqlToolkit agent", toolkitAgent],
];

/** Runs every agent on every question, one database at a time. */
async function runCase(label: string, groups: { file: string; questions: { question: string; sql: string }[] }[]): Promise<CaseResult> {
  const byAgent = new Map<string, PerQuestion[]>(FACTORIES.map(([name]) => [name, []]));
  for (const group of groups) {
    const tableInfo = await tableInfoOf(group.file);
    for (const [name, factory] of FACTORIES) {
      const agent = await factory(group.file, tableInfo);
      try {
        byAgent.get(name)!.push(...(await measure(agent, group.questions)));
      } finally {
        await agent.close();
      }
    }
  }
  return { label, questions: groups.reduce((n, g) => n + g.questions.length, 0), byAgent };
}

const stat = (xs: number[]) => `${median(xs)} / ${percentile(xs, 95)}`;

function printCase(result: CaseResult): void {
  const pulse = result.byAgent.get("Pulse")!;
  const runsOf = [...result.byAgent.values()];
  // Questions whose gold SQL ran in every agent's tool: a model would retry the others, so there
  // the fake's immediate answer undercounts the agent whose tool failed.
  const clean = pulse.map((_, i) => runsOf.every((runs) => !runs[i]!.queryError));
  for (const [name, runs] of result.byAgent) {
    const ratio = name === "Pulse" ? "1.00" : (median(runs.map((r) => r.total)) / median(pulse.map((r) => r.total))).toFixed(2);
    const perQ = name === "Pulse" ? "1.00" : median(runs.map((r, i) => r.total / pulse[i]!.total)).toFixed(2);
    const cleanRuns = runs.filter((_, i) => clean[i]);
    console.log(
      `| ${result.label} | ${name} | ${runs.length} | ${stat(runs.map((r) => r.total))} | ${ratio} | ${perQ} | ${median(cleanRuns.map((r) => r.total))} (${cleanRuns.length}) | ` +
        `${stat(runs.map((r) => r.first))} | ${median(runs.map((r) => r.firstSystem))} | ${median(runs.map((r) => r.firstSchema))} | ${median(runs.map((r) => r.firstTools))} | ` +
        `${median(runs.map((r) => r.requests))} | ${runs.filter((r) => r.queryError).length} |`,
    );
  }
}

// ---- report -------------------------------------------------------------------------------------

await loadGuard();
const goldRows = checkChinookGold();
const snapshots = spiderSnapshots();
const all = spiderQuestions(snapshots);
const random = seededRandom(SEED);
const sample = all
  .map((q, i) => ({ q, i, key: random() }))
  .sort((a, b) => a.key - b.key)
  .slice(0, SAMPLE)
  .sort((a, b) => a.i - b.i)
  .map(({ q }) => ({ question: q.question, sql: q.query, db: q.db_id }));
const dbs = [...new Set(sample.map((q) => q.db))].sort();

const dir = tempDir("pulse-bench-tokens-");
const results: CaseResult[] = [];
const t0 = performance.now();
try {
  const chinook = path.join(dir, "chinook.sqlite");
  copyFileSync(CHINOOK_SQLITE, chinook);
  results.push(await runCase("Chinook (11 tables)", [{ file: chinook, questions: CHINOOK }]));
  const own = dbs.map((db) => ({ file: path.join(SPIDER_SQLITE_DIR, db, `${db}.sqlite`), questions: sample.filter((q) => q.db === db) }));
  results.push(await runCase(`Spider dev sample, own schemas (${dbs.length} dbs)`, own));
  const padded = dbs.map((db) => {
    const file = path.join(dir, `${db}_padded.sqlite`);
    paddedCopy(path.join(SPIDER_SQLITE_DIR, db, `${db}.sqlite`), file);
    return { file, questions: sample.filter((q) => q.db === db) };
  });
  results.push(await runCase(`Spider dev sample, padded to ${TABLES} tables`, padded));
} finally {
  rmSync(dir, { recursive: true, force: true });
  globalThis.fetch = realFetch;
  await fake.close();
}

console.log(`## Prompt tokens per question: Pulse against LangChain's SQL agent (${new Date().toISOString().slice(0, 10)})`);
console.log("");
console.log(`command: \`npx tsx bench/ask-tokens.ts\` (SAMPLE=${SAMPLE} SEED=${SEED} PAD_SEED=${PAD_SEED} TABLES=${TABLES}); ran in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
console.log(`machine: ${machine()}`);
console.log(
  "model: one scripted OpenAI-compatible server (tests/support/fake-openai.ts) for all agents; per question it calls the agent's query tool " +
    "(Pulse run_query, tutorial execute_sql, toolkit query-sql) with the gold SQL, then answers. Both sides use ChatOpenAI (@langchain/openai 1.5.8).",
);
console.log(
  "tokens: o200k_base (js-tiktoken, offline) of JSON.stringify(message) for every message of every request, plus JSON.stringify(tools) of the request; " +
    "summed per question. Same counting for every agent.",
);
console.log(
  `Pulse: agents/graph.ts runAgent with the service defaults (max steps ${config.agent.maxSteps}, schema budget ${config.agent.schemaTokens}, ${config.agent.rowsToModel} rows to the model), ` +
    "a GuardedConnector on the same SQLite file. LangChain: createAgent (langchain 1.x) with SqlDatabase (@langchain/classic/sql_db, typeorm better-sqlite3, " +
    "sampleRowsInTableInfo 3: the default) and getTableInfo() of all tables in the system prompt.",
);
console.log(
  `Chinook: 12 hand-written questions; each gold SQL runs on Chinook_Sqlite.sqlite and returns rows (${goldRows.join(", ")}). ` +
    `Spider: ${SAMPLE} of the ${all.length} dev questions (seeded shuffle, seed ${SEED}) on ${dbs.length} databases (${dbs.join(", ")}); ` +
    `padded copies keep every real table and row and add distractors (tests/support/schema-padding.ts, seed ${PAD_SEED}) with 3 made-up rows each.`,
);
console.log("");
console.log(
  "| case | agent | questions | prompt tokens per question: median / p95 | median vs Pulse | per-question ratio vs Pulse (median) | median on questions no tool failed (n) | " +
    "first request: median / p95 | first request: system message (median) | of which schema text (median) | first request: tool definitions (median) | requests per question | gold SQL errored in the tool |",
);
console.log("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
for (const r of results) printCase(r);
console.log("");
console.log(
  "gold SQL errored: the tool's reply to the gold SQL was an error. LangChain's SqlDatabase runs on better-sqlite3, which rejects Spider's double-quoted string literals " +
    '(`WHERE name = "Kyle"`: no such column); Pulse accepts them as sqlite3 does. The fake answers after an error all the same, so on those questions a real model would ' +
    "retry and LangChain's count is a lower bound; the column of questions no tool failed compares like with like.",
);
console.log(`requests to anything but 127.0.0.1 (refused): ${offline.length === 0 ? "none" : [...new Set(offline)].join(", ")}`);
