// Overhead of POST /ask excluding model time, on Chinook (SQLite): the compiled service talks to
// a fake OpenAI-compatible model in this process that answers at once (a run_query tool call
// with a fixed SQL, then a short answer) and times itself from request received to response
// end. Per ask: HTTP total, the service's elapsed_ms, and both minus the model server's time.
// Modes: sequential and concurrent JSON asks, SSE asks (streamed model calls), and asks whose
// SQL text is new each time (the guard's verdict cache then never answers). Then, unless
// PROFILE=0, one run under `node --cpu-prof` summarised by self and inclusive time.
// Run: npm run build && npx tsx bench/ask-overhead.ts
//      (ASKS=300 WARMUP=30 CONCURRENCY=10 STORES=embedded,postgres PROFILE=1 PROFILE_ASKS=1000)

import { spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { loadavg } from "node:os";
import path from "node:path";

import { AIMessage, HumanMessage, SystemMessage, ToolMessage, type BaseMessage } from "@langchain/core/messages";
// The entry agents/graph.ts uses: no process-wide AsyncLocalStorage in this process either.
import { Annotation, Command, END, START, StateGraph } from "@langchain/langgraph/web";
import OpenAI from "openai";
import pg from "pg";

import { runAgent, systemPrompt } from "../agents/graph.js";
import { createChatModel, invokeCompletion, streamCompletion } from "../agents/model.js";
import { loadPrompts } from "../agents/prompts.js";
import { skipUnreadRunTrees } from "../agents/run-trees.js";
import { buildSchemaIndex } from "../agents/schema-context.js";
import { callSqlTool, createRecorder, SQL_TOOL_NAMES, toolDefinitions } from "../agents/tools.js";
import { createBudget } from "../src/connectors/budget.js";
import { classifyStatement, loadGuard } from "../src/connectors/guard/index.js";
import { GuardedConnector } from "../src/connectors/guarded.js";
import { openDriver } from "../src/connectors/open.js";
import { cpuMs, machine, percentile, root, startServer, tempDir, type ServerProcess } from "./lib.js";

const ASKS = Number(process.env.ASKS ?? 300);
const WARMUP = Number(process.env.WARMUP ?? 30);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 10);
const STORES = (process.env.STORES ?? "embedded,postgres").split(",").filter(Boolean) as ("embedded" | "postgres")[];
const PROFILE = process.env.PROFILE !== "0";
const PROFILE_ASKS = Number(process.env.PROFILE_ASKS ?? 1000);
const GOAL_MS = 10;

const CHINOOK_SQLITE = path.join(root, "../shared/data/chinook/Chinook_Sqlite.sqlite");
const SQL =
  "SELECT g.Name AS genre, COUNT(*) AS tracks, ROUND(SUM(t.Milliseconds) / 3600000.0, 1) AS hours FROM Track t JOIN Genre g ON g.GenreId = t.GenreId GROUP BY g.Name ORDER BY tracks DESC LIMIT 10";
const ANSWER = "Rock has the most tracks (1,297), then Latin and Metal.";
const LONG_ANSWER = Array.from({ length: 200 }, (_, i) => `word${i}`).join(" ");

// ---- the fake model: answers at once, times itself per question -----------------------------

interface ChatBody {
  model: string;
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
  messages: { role: string; content: unknown }[];
}

interface FakeModel {
  baseUrl: string;
  /** Milliseconds the fake spent per question text (request received to response end, summed). */
  spent: Map<string, number>;
  requests: number;
  close(): Promise<void>;
}

const textOf = (content: unknown): string =>
  typeof content === "string" ? content : Array.isArray(content) ? content.map((p: { text?: string }) => p.text ?? "").join("") : "";

async function startFakeModel(): Promise<FakeModel> {
  const spent = new Map<string, number>();
  let completions = 0;
  const model: FakeModel = { baseUrl: "", spent, requests: 0, close: async () => {} };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const t0 = performance.now();
    const parts: Buffer[] = [];
    req.on("data", (p: Buffer) => parts.push(p));
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(parts).toString("utf8")) as ChatBody;
      model.requests++;
      const question = textOf(body.messages.findLast((m) => m.role === "user")?.content);
      res.once("finish", () => spent.set(question, (spent.get(question) ?? 0) + performance.now() - t0));
      // A fresh id per completion: LangGraph replaces messages that share an id.
      const id = `chatcmpl-bench-${++completions}-${randomUUID().slice(0, 8)}`;
      // "long:" questions get a 200-chunk answer at once (per-chunk cost of the client).
      const long = question.startsWith("long:");
      const answered = long || body.messages.at(-1)?.role === "tool";
      const answer = long ? LONG_ANSWER : ANSWER;
      const usage = { prompt_tokens: 100, completion_tokens: 10, total_tokens: 110 };
      // "New SQL" questions get the SQL with a comment that differs on every request, so the
      // guard's verdict cache never answers for it (as with questions that do not repeat).
      const sql = question.startsWith("New SQL:") ? `${SQL} /* ${completions} */` : SQL;
      const call = { id: `call_${id.slice(-8)}`, type: "function", function: { name: "run_query", arguments: JSON.stringify({ sql }) } };
      if (!body.stream) {
        const message = answered ? { role: "assistant", content: answer } : { role: "assistant", content: null, tool_calls: [call] };
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ id, object: "chat.completion", created: 0, model: body.model, choices: [{ index: 0, message, finish_reason: answered ? "stop" : "tool_calls" }], usage }));
        return;
      }
      const base = { id, object: "chat.completion.chunk", created: 0, model: body.model };
      const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) => `data: ${JSON.stringify({ ...base, choices, ...extra })}\n\n`;
      let out = chunk([{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }]);
      if (answered) {
        for (const piece of answer.match(/\s*\S+/g)!) out += chunk([{ index: 0, delta: { content: piece }, finish_reason: null }]);
      } else {
        out += chunk([{ index: 0, delta: { tool_calls: [{ index: 0, ...call }] }, finish_reason: null }]);
      }
      out += chunk([{ index: 0, delta: {}, finish_reason: answered ? "stop" : "tool_calls" }]);
      if (body.stream_options?.include_usage) out += chunk([], { usage });
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      res.end(`${out}data: [DONE]\n\n`);
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, "127.0.0.1");
  await new Promise<void>((resolve, reject) => server.once("listening", resolve).once("error", reject));
  model.baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  model.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return model;
}

// ---- the service -------------------------------------------------------------------------

interface Store {
  label: string;
  env: Record<string, string>;
  drop(): Promise<void>;
}

async function store(kind: "embedded" | "postgres"): Promise<Store> {
  if (kind === "embedded") return { label: "embedded (PGlite + in-process sessions)", env: {}, drop: async () => {} };
  const name = `pulse_bench_ask_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ host: "127.0.0.1", user: "postgres", database: "test" });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  return {
    label: "PostgreSQL 127.0.0.1 + Redis 127.0.0.1",
    env: {
      NODE_ENV: "production",
      DATABASE_URL: `postgresql://postgres@127.0.0.1:5432/${name}`,
      REDIS_URL: "redis://127.0.0.1:6379/15",
      JWT_SECRET: randomBytes(32).toString("hex"),
      SECRETS_KEY: randomBytes(32).toString("hex"),
    },
    drop: async () => {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    },
  };
}

interface Client {
  url: string;
  token: string;
  sessionId: string;
  userId: number;
}

async function json<T>(res: Response): Promise<T> {
  if (!res.ok) throw new Error(`${res.url}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

async function connectedClient(server: Pick<ServerProcess, "url">, sqliteRoot: string): Promise<Client> {
  const email = `bench-${randomBytes(4).toString("hex")}@example.com`;
  const password = "bench password";
  const reg = await json<{ id: number }>(
    await fetch(`${server.url}/users/`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: "B", email, password }) }),
  );
  const login = await json<{ access_token: string; session_id: string }>(
    await fetch(`${server.url}/login`, { method: "POST", body: new URLSearchParams({ username: email, password }) }),
  );
  const auth = { authorization: `Bearer ${login.access_token}` };
  const file = `chinook-${randomBytes(3).toString("hex")}.sqlite`;
  copyFileSync(CHINOOK_SQLITE, path.join(sqliteRoot, file));
  const added = await json<{ db_connection: { id: number } }>(
    await fetch(`${server.url}/databases/add_db_connection`, {
      method: "POST",
      headers: { "content-type": "application/json", ...auth },
      body: JSON.stringify({ db_type: "sqlite", database_name: file }),
    }),
  );
  await json(await fetch(`${server.url}/databases/connect_db/${added.db_connection.id}`, { method: "POST", headers: auth }));
  return { url: server.url, token: login.access_token, sessionId: login.session_id, userId: reg.id };
}

interface Sample {
  httpMs: number;
  elapsedMs: number;
  modelMs: number;
}

let askCounter = 0;

type AskBody = { elapsed_ms: number; sql: string[]; result: { row_count: number } | null; steps: number };

/** One ask as JSON, or with `Accept: text/event-stream` read to the end (the `result` event
 * carries the same body). */
async function askOnce(client: Client, thread: string, sse = false, newSql = false): Promise<{ question: string; httpMs: number; elapsedMs: number }> {
  const question = `${newSql ? "New SQL: " : ""}Which genres have the most tracks? (#${++askCounter})`;
  const t0 = performance.now();
  const res = await fetch(`${client.url}/ask`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${client.token}`, ...(sse ? { accept: "text/event-stream" } : {}) },
    body: JSON.stringify({ question, session_id: client.sessionId, user_id: client.userId, thread_id: thread }),
  });
  let body: AskBody;
  if (sse) {
    const text = await res.text();
    const result = /^event: result\ndata: (.*)$/m.exec(text);
    if (!res.ok || !result) throw new Error(`SSE ask failed: HTTP ${res.status} ${text.slice(0, 500)}`);
    body = JSON.parse(result[1]!) as AskBody;
  } else {
    body = await json<AskBody>(res);
  }
  const httpMs = performance.now() - t0;
  if (body.sql.length !== 1 || body.result?.row_count !== 10 || body.steps !== 2) throw new Error(`unexpected answer: ${JSON.stringify(body)}`);
  return { question, httpMs, elapsedMs: body.elapsed_ms };
}

type Mode = { label: string; workers: number; thread: (i: number) => string; sse?: boolean; newSql?: boolean };

async function runMode(client: Client, fake: FakeModel, mode: Mode, asks: number, pid?: number): Promise<{ samples: Sample[]; wallMs: number; cpuMs: number }> {
  const samples: Sample[] = [];
  let next = 0;
  const cpu0 = cpuMs(pid);
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: mode.workers }, async () => {
      while (next < asks) {
        const i = next++;
        const r = await askOnce(client, mode.thread(i), mode.sse, mode.newSql);
        samples.push({ httpMs: r.httpMs, elapsedMs: r.elapsedMs, modelMs: fake.spent.get(r.question) ?? NaN });
      }
    }),
  );
  return { samples, wallMs: performance.now() - t0, cpuMs: cpuMs(pid) - cpu0 };
}

const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
const p50p99 = (xs: number[]) => `${fmt(percentile(xs, 50))} / ${fmt(percentile(xs, 99))}`;

function row(storeLabel: string, mode: Mode, r: { samples: Sample[]; wallMs: number; cpuMs: number }): string {
  const s = r.samples;
  const cells = [
    s.map((x) => x.httpMs),
    s.map((x) => x.elapsedMs),
    s.map((x) => x.modelMs),
    s.map((x) => x.elapsedMs - x.modelMs),
    s.map((x) => x.httpMs - x.modelMs),
  ].map(p50p99);
  return `| ${storeLabel} | ${mode.label} | ${s.length} | ${cells.join(" | ")} | ${(r.cpuMs / s.length).toFixed(1)} | ${((1000 * s.length) / r.wallMs).toFixed(0)} |`;
}

/** The compiled service under `node --cpu-prof` (not allowed in NODE_OPTIONS, so not via startServer). */
async function startProfiledServer(env: Record<string, string>, profDir: string): Promise<{ url: string; stop(): Promise<void> }> {
  const port = 19_000 + Math.floor(Math.random() * 500);
  const child = spawn(process.execPath, ["--cpu-prof", `--cpu-prof-dir=${profDir}`, "--cpu-prof-interval=250", path.join(root, "dist/src/main.js")], {
    env: { PATH: process.env.PATH ?? "", LOG_LEVEL: "warn", HOST: "127.0.0.1", PORT: String(port), ...env },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const url = `http://127.0.0.1:${port}`;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`profiled server exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${url}/health`)).status === 200) break;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  return {
    url,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

// ---- in-process breakdown: what each layer costs, measured in the bench process ----------------

const BREAKDOWN_RUNS = 300;

/** p50 / p99 of `run` (after warm-up), minus what the fake model spent on the questions it sent. */
async function timed(run: (i: number) => Promise<string | null> | string | null): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < BREAKDOWN_RUNS + 50; i++) {
    const t0 = performance.now();
    const question = await run(i);
    const ms = performance.now() - t0 - (question === null ? 0 : (fake.spent.get(question) ?? NaN));
    if (i >= 50) out.push(ms);
  }
  return out;
}

async function breakdown(): Promise<string[]> {
  await loadGuard();
  // As runAgent does on first use, so every layer below runs as it does in the service.
  skipUnreadRunTrees();
  const dir = tempDir("pulse-bench-ask-inproc-");
  const file = path.join(dir, "chinook.sqlite");
  copyFileSync(CHINOOK_SQLITE, file);
  const driver = await openDriver(
    { dialect: "sqlite", host: "", port: 0, database: "chinook.sqlite", username: "", password: "", ssl: false, connectTimeoutMs: 5000, filePath: file },
    { maxConnections: 1, idleTimeoutMs: 60_000 },
  );
  const connector = new GuardedConnector(1, 1, "chinook", driver, { maxRows: 1000, maxBytes: 16 * 1024 * 1024, timeoutMs: 30_000 }, createBudget({ concurrency: 4, maxWaiting: 32, perMinute: 10_000_000, maxWaitMs: 5000 }));
  const index = await buildSchemaIndex(await connector.schema());
  const prompts = loadPrompts();
  const model = createChatModel({ baseUrl: fake.baseUrl, model: "fake-model", temperature: 0, timeoutMs: 60_000 });
  const toolContext = { connector, index, recorder: createRecorder(), maxRowsToModel: 50, apiMaxRows: 1000 };
  const toolJson = toolDefinitions(SQL_TOOL_NAMES);
  const sdk = new OpenAI({ baseURL: fake.baseUrl, apiKey: "unused", maxRetries: 0 });
  const agentInput = { history: [], dialect: connector.dialect, connector, index, maxSteps: 8, maxRowsToModel: 50, apiMaxRows: 1000, schemaTokenBudget: 4000, prompts };
  const q = (label: string, i: number) => `${label} #${i}`;

  // The same graph shape as agents/graph.ts (concatenating messages, Command routing, compiled
  // once) with nodes that do nothing: LangGraph's own cost.
  const State = Annotation.Root({
    messages: Annotation<BaseMessage[]>({ reducer: (all, added) => all.concat(added), default: () => [] }),
    steps: Annotation<number>({ reducer: (_, n) => n, default: () => 0 }),
  });
  const stubGraph = new StateGraph(State)
    .addNode(
      "agent",
      (s: typeof State.State) => {
        const message = s.steps === 0 ? new AIMessage({ content: "", tool_calls: [{ name: "run_query", args: { sql: SQL }, id: `c${s.steps}`, type: "tool_call" }] }) : new AIMessage(ANSWER);
        return new Command({ update: { messages: [message], steps: s.steps + 1 }, goto: message.tool_calls?.length ? "tools" : END });
      },
      { ends: ["tools", "give_up", END] },
    )
    .addNode("tools", () => ({ messages: [new ToolMessage({ content: "genre | tracks\nRock | 1297", tool_call_id: "c0", name: "run_query" })] }))
    .addNode("give_up", () => ({}))
    .addEdge(START, "agent")
    .addEdge("tools", "agent")
    .addEdge("give_up", END)
    .compile();

  const rows: [string, string, number[]][] = [
    ["guard: classifyStatement of the bench SQL, repeated (verdict cache)", "1", await timed(() => (classifyStatement("sqlite", SQL), null))],
    ["guard: classifyStatement of the bench SQL, a new text each run (sql-parser-cst parse + rules)", "1", await timed((i) => (classifyStatement("sqlite", `${SQL} /* ${i} */`), null))],
    ["GuardedConnector.query: guard + budget + SQLite worker thread + 10 rows", "1", await timed(async () => (await connector.query(SQL), null))],
    ["run_query through callSqlTool (zod args) + render rows", "1", await timed(async () => (await callSqlTool(toolContext, SQL_TOOL_NAMES, "run_query", { sql: SQL }), null))],
    ["systemPrompt(): schemaContext (BM25 over 11 tables) + render", "1", await timed((i) => (systemPrompt({ ...agentInput, question: q("prompt", i) }, prompts), null))],
    [
      "model call floor: fetch + read the SSE body to the end (no parsing)",
      "2",
      await timed(async (i) => {
        const question = q("floor", i);
        const res = await fetch(`${fake.baseUrl}/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model: "fake-model", stream: true, stream_options: { include_usage: true }, messages: [{ role: "user", content: question }], tools: toolJson }),
        });
        await res.text();
        return question;
      }),
    ],
    [
      "model call: openai SDK 6 chat.completions.create({ stream: true }), chunks iterated",
      "2",
      await timed(async (i) => {
        const question = q("sdk", i);
        const stream = await sdk.chat.completions.create({
          model: "fake-model",
          stream: true,
          stream_options: { include_usage: true },
          messages: [{ role: "user", content: question }],
          tools: toolJson as OpenAI.Chat.Completions.ChatCompletionTool[],
        });
        for await (const chunk of stream) void chunk;
        return question;
      }),
    ],
    [
      "model call: Pulse invokeCompletion (ChatOpenAI.invoke(), tools as call options; JSON asks)",
      "2",
      await timed(async (i) => {
        const question = q("chatopenai-invoke", i);
        await invokeCompletion(model, [new SystemMessage("You answer."), new HumanMessage(question)], { timeoutMs: 60_000, tools: toolJson });
        return question;
      }),
    ],
    [
      "model call: Pulse streamCompletion (ChatOpenAI.stream(), chunks merged; SSE asks)",
      "2",
      await timed(async (i) => {
        const question = q("chatopenai", i);
        await streamCompletion(model, [new SystemMessage("You answer."), new HumanMessage(question)], { timeoutMs: 60_000, tools: toolJson, onToken: () => {} });
        return question;
      }),
    ],
    [
      "model call, 200-chunk streamed answer: openai SDK",
      "-",
      await timed(async (i) => {
        const question = q("long: sdk", i);
        const stream = await sdk.chat.completions.create({ model: "fake-model", stream: true, stream_options: { include_usage: true }, messages: [{ role: "user", content: question }] });
        for await (const chunk of stream) void chunk;
        return question;
      }),
    ],
    [
      "model call, 200-chunk streamed answer: Pulse streamCompletion (ChatOpenAI + tools)",
      "-",
      await timed(async (i) => {
        const question = q("long: chatopenai", i);
        await streamCompletion(model, [new SystemMessage("You answer."), new HumanMessage(question)], { timeoutMs: 60_000, tools: toolJson, onToken: () => {} });
        return question;
      }),
    ],
    ["LangGraph alone: the agent's StateGraph shape, stub nodes, 2 agent + 1 tools steps", "1", await timed(async () => (await stubGraph.invoke({ messages: [new HumanMessage("q")] }), null))],
    [
      "runAgent in process: prompt, 2 model calls, 1 guarded query (no HTTP, auth, session, memory)",
      "1",
      await timed(async (i) => {
        const question = q("runAgent", i);
        await runAgent(model, { ...agentInput, question });
        return question;
      }),
    ],
    [
      "runAgent in process with onEvent (streamed model calls, as for SSE)",
      "1",
      await timed(async (i) => {
        const question = q("runAgent-sse", i);
        await runAgent(model, { ...agentInput, question, onEvent: () => {} });
        return question;
      }),
    ],
  ];
  await connector.close();
  rmSync(dir, { recursive: true, force: true });
  const lines = [
    `| layer (in the bench process, warm, ${BREAKDOWN_RUNS} runs, fake model time subtracted) | times per ask | p50 ms | p99 ms | p50 x times per ask |`,
    "|---|---:|---:|---:|---:|",
  ];
  for (const [label, times, xs] of rows) {
    const perAsk = times === "-" ? "-" : (percentile(xs, 50) * Number(times)).toFixed(2);
    lines.push(`| ${label} | ${times} | ${percentile(xs, 50).toFixed(3)} | ${percentile(xs, 99).toFixed(3)} | ${perAsk} |`);
  }
  return lines;
}

// ---- profile summary ----------------------------------------------------------------------

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

function fileOf(url: string, fn: string): string {
  if (!url) return `(${fn || "native"})`.replace(/^\(\((.*)\)\)$/, "($1)");
  const u = url.replace(/^file:\/\//, "");
  const nm = u.lastIndexOf("/node_modules/");
  if (nm >= 0) {
    const rest = u.slice(nm + 14).split("/");
    return rest[0]!.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (u.startsWith(root)) return u.slice(root.length);
  return u.startsWith("node:") ? u.replace(/^node:internal\/(?:deps\/)?([^/]+).*$/, "node:internal/$1") : u;
}

/** Self and inclusive time, by file/package and by function, of the samples inside [from, to] (µs, monotonic). */
function summariseProfile(profile: CpuProfile, from: number, to: number, asks: number): string[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfFile = new Map<string, number>();
  const selfFn = new Map<string, number>();
  const inclFile = new Map<string, number>();
  const inclPulse = new Map<string, number>();
  const add = (m: Map<string, number>, k: string, v: number) => m.set(k, (m.get(k) ?? 0) + v);
  let t = profile.startTime;
  let busy = 0;
  let idle = 0;
  let inWindow = 0;
  const windowed = from >= profile.startTime && to <= profile.endTime;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i]!;
    // A sample's weight is the gap to the next one.
    const dt = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    if (windowed && (t < from || t > to)) continue;
    inWindow++;
    const node = byId.get(profile.samples[i]!)!;
    const fn = node.callFrame.functionName;
    if (fn === "(idle)") {
      idle += dt;
      continue;
    }
    busy += dt;
    const file = fileOf(node.callFrame.url, fn);
    add(selfFile, file, dt);
    add(selfFn, `${fn || "(anonymous)"} ${file}${node.callFrame.url ? `:${node.callFrame.lineNumber + 1}` : ""}`, dt);
    const files = new Set<string>();
    const pulseFns = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const f = byId.get(id)!.callFrame;
      if (f.functionName === "(root)") continue;
      const name = fileOf(f.url, f.functionName);
      files.add(name);
      if (/^(?:dist\/)?(?:src|agents)\//.test(name)) pulseFns.add(`${f.functionName || "(anonymous)"} ${name}:${f.lineNumber + 1}`);
    }
    for (const f of files) add(inclFile, f, dt);
    for (const f of pulseFns) add(inclPulse, f, dt);
  }
  const top = (m: Map<string, number>, n: number) => [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, n);
  const lines: string[] = [];
  lines.push(
    `samples: ${inWindow} ${windowed ? "inside the measured window" : "(window not found in the profile's clock: whole profile, start-up included)"}; ` +
      `busy ${busy.toFixed(0)} ms, idle ${idle.toFixed(0)} ms over ${asks} asks: **${(busy / asks).toFixed(2)} ms of server CPU per ask**`,
  );
  lines.push("");
  lines.push("| self time by file / package | ms | per ask | share of busy |");
  lines.push("|---|---:|---:|---:|");
  for (const [k, v] of top(selfFile, 22)) lines.push(`| ${k} | ${v.toFixed(0)} | ${(v / asks).toFixed(3)} | ${((100 * v) / busy).toFixed(1)}% |`);
  lines.push("");
  lines.push("| self time by function | ms | per ask | share of busy |");
  lines.push("|---|---:|---:|---:|");
  for (const [k, v] of top(selfFn, 25)) lines.push(`| ${k.replaceAll("|", "\\|")} | ${v.toFixed(0)} | ${(v / asks).toFixed(3)} | ${((100 * v) / busy).toFixed(1)}% |`);
  lines.push("");
  lines.push("| inclusive time by file / package (on the sampled stack; async continuations start a new stack) | ms | per ask | share of busy |");
  lines.push("|---|---:|---:|---:|");
  const asyncRoots = /^(?:\(runMicrotasks\)|node:internal\/(?:process|bootstrap|timers))$/;
  for (const [k, v] of top(new Map([...inclFile].filter(([k]) => !asyncRoots.test(k))), 22)) lines.push(`| ${k} | ${v.toFixed(0)} | ${(v / asks).toFixed(3)} | ${((100 * v) / busy).toFixed(1)}% |`);
  lines.push("");
  lines.push("| inclusive time by Pulse function (src/, agents/) | ms | per ask | share of busy |");
  lines.push("|---|---:|---:|---:|");
  for (const [k, v] of top(inclPulse, 25)) lines.push(`| ${k} | ${v.toFixed(0)} | ${(v / asks).toFixed(3)} | ${((100 * v) / busy).toFixed(1)}% |`);
  return lines;
}

// ---- main ---------------------------------------------------------------------------------

const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);
const fake = await startFakeModel();
const commonEnv = (sqliteRoot: string, dataDir: string) => ({
  DATA_DIR: dataDir,
  SQLITE_ROOT: sqliteRoot,
  OPENAI_BASE_URL: fake.baseUrl,
  OPENAI_MODEL: "fake-model",
  ASK_PER_MINUTE: "100000",
  ASK_TOKENS_PER_HOUR: "1000000000000",
  // Login limits live in Redis db 15, shared with other benches and tests run from 127.0.0.1.
  LOGIN_MAX_ATTEMPTS_PER_CLIENT: "100000",
  LOGIN_MAX_ATTEMPTS_PER_ACCOUNT: "10000",
  CONNECTION_QUERIES_PER_MINUTE: "10000000",
  CONNECTION_MAX_CONCURRENCY: String(Math.max(4, CONCURRENCY)),
  USER_QUERIES_PER_MINUTE: "10000000",
  USER_MAX_CONCURRENCY: String(Math.max(8, CONCURRENCY)),
});

const modes: Mode[] = [
  { label: "sequential, new thread per ask", workers: 1, thread: (i) => `seq-${i}` },
  { label: "sequential, one thread (history: 10 turns)", workers: 1, thread: () => "one-thread" },
  { label: `concurrency ${CONCURRENCY}, new thread per ask`, workers: CONCURRENCY, thread: (i) => `conc-${i}` },
  { label: "sequential, new thread per ask, SSE (streamed model calls)", workers: 1, thread: (i) => `sse-${i}`, sse: true },
  { label: "sequential, new thread per ask, a new SQL text each time (guard verdict not cached)", workers: 1, thread: (i) => `new-sql-${i}`, newSql: true },
];
const rows: string[] = [];
const startedAt = new Date().toISOString();
const loadAtStart = loadavg().map((x) => x.toFixed(1)).join(" ");
let sequentialP50 = 0;
let newSqlP50 = NaN;
for (const kind of STORES) {
  const s = await store(kind);
  const dataDir = tempDir("pulse-bench-ask-");
  const sqliteRoot = path.join(dataDir, "targets");
  mkdirSync(sqliteRoot);
  const server = await startServer({ ...commonEnv(sqliteRoot, dataDir), ...s.env });
  try {
    const client = await connectedClient(server, sqliteRoot);
    for (const mode of modes) {
      await runMode(client, fake, mode, WARMUP);
      const r = await runMode(client, fake, mode, ASKS, server.child.pid);
      rows.push(row(s.label, mode, r));
      if (mode.workers === 1 && mode.label.includes("new thread") && !mode.sse && !mode.newSql) {
        sequentialP50 = Math.max(sequentialP50, percentile(r.samples.map((x) => x.elapsedMs - x.modelMs), 50));
      }
      if (mode.newSql) newSqlP50 = Math.max(Number.isNaN(newSqlP50) ? 0 : newSqlP50, percentile(r.samples.map((x) => x.elapsedMs - x.modelMs), 50));
    }
  } finally {
    await server.stop();
    await s.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

console.log(`## /ask overhead excluding model time (${startedAt.slice(0, 10)})`);
console.log("");
console.log(`command: \`npm run build && npx tsx bench/ask-overhead.ts\` (ASKS=${ASKS} WARMUP=${WARMUP} CONCURRENCY=${CONCURRENCY} STORES=${STORES.join(",")})`);
console.log(`machine: ${machine()}; load average at start ${loadAtStart}, at end ${loadavg().map((x) => x.toFixed(1)).join(" ")} (the machine is shared)`);
console.log(
  "setup: compiled service (dist/src/main.js, LOG_LEVEL=warn), Chinook SQLite copied under SQLITE_ROOT, one user, connect_db; " +
    "the fake model (in the bench process) answers each ask with 2 completions (plain for JSON asks, streamed for SSE asks): a run_query tool call with a fixed SQL " +
    "(GROUP BY over Track x Genre, 10 rows), then a 10-word answer. No randomness (no seed needed).",
);
console.log(
  "model ms: time the fake server spent on the ask's 2 requests (request received to response end, summed); elapsed_ms is the service's own figure (whole ms).",
);
console.log("");
console.log("| store | mode | asks | HTTP total p50 / p99 ms | elapsed_ms p50 / p99 | model ms p50 / p99 | **elapsed_ms - model** p50 / p99 | HTTP total - model p50 / p99 | server CPU ms / ask | asks/s |");
console.log("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
for (const r of rows) console.log(r);
console.log("");
console.log(`goal: p50 of elapsed_ms - model <= ${GOAL_MS} ms (sequential, new thread): ${sequentialP50 <= GOAL_MS ? "met" : "NOT met"} (worst store: ${fmt(sequentialP50)} ms)`);
console.log(`the same with a new SQL text each ask (no guard verdict cache): ${fmt(newSqlP50)} ms (worst store)`);

if (process.env.BREAKDOWN !== "0") {
  console.log("");
  console.log("### Breakdown by layer (in process)");
  console.log("");
  for (const line of await breakdown()) console.log(line);
}

if (PROFILE) {
  const dataDir = tempDir("pulse-bench-ask-prof-");
  const sqliteRoot = path.join(dataDir, "targets");
  const profDir = path.join(dataDir, "prof");
  mkdirSync(sqliteRoot);
  const server = await startProfiledServer(commonEnv(sqliteRoot, dataDir), profDir);
  let from = 0;
  let to = 0;
  try {
    const client = await connectedClient(server, sqliteRoot);
    const mode = modes[0]!;
    await runMode(client, fake, mode, WARMUP * 3);
    from = monotonicUs();
    await runMode(client, fake, mode, PROFILE_ASKS);
    to = monotonicUs();
  } finally {
    await server.stop();
  }
  const file = readdirSync(profDir).find((f) => f.endsWith(".cpuprofile"));
  console.log("");
  console.log(`### Where the time goes: \`node --cpu-prof --cpu-prof-interval=250\` on the server, embedded defaults, ${PROFILE_ASKS} sequential asks after ${WARMUP * 3} warm-up`);
  console.log("");
  if (!file) console.log("no profile was written");
  else for (const line of summariseProfile(JSON.parse(readFileSync(path.join(profDir, file), "utf8")) as CpuProfile, from, to, PROFILE_ASKS)) console.log(line);
  rmSync(dataDir, { recursive: true, force: true });
}

await fake.close();
