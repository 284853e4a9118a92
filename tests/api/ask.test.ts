// POST /ask over HTTP (seed 004): the real ChatOpenAI client against a scripted
// OpenAI-compatible server, the real guard and a real Chinook SQLite database.

import { monitorEventLoopDelay } from "node:perf_hooks";

import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";

import { MAX_TOOL_CALLS_PER_REPLY } from "../../agents/tool-arguments.js";
import { startQueuedFakeOpenAI, textOf, type FakeOpenAI, type FakeStep } from "../support/fake-openai.js";
import { createHarness, type Harness } from "../support/harness.js";
import { sqliteTarget } from "../support/targets.js";

/** Replies the next model request gets, in order; tests fill it. */
const replies: FakeStep[] = [];
let fake: FakeOpenAI;
let h: Harness;

const COUNT_SQL = "SELECT COUNT(*) AS albums FROM Album";
const answerWithQuery = (sql = COUNT_SQL, answer = "There are 347 albums.") => {
  replies.push({ toolCalls: [{ name: "run_query", args: { sql } }], usage: { prompt_tokens: 120, completion_tokens: 15 } });
  replies.push({ content: answer, usage: { prompt_tokens: 160, completion_tokens: 8 } });
};

beforeAll(async () => {
  fake = await startQueuedFakeOpenAI(replies);
  h = await createHarness({
    store: "postgresql",
    sessions: "redis",
    env: { OPENAI_BASE_URL: fake.baseUrl, OPENAI_MODEL: "fake-model", OPENAI_TIMEOUT_MS: "1500", ASK_PER_MINUTE: "1000" },
  });
});
afterAll(async () => {
  await h?.close();
  await fake?.close();
});
beforeEach(() => {
  replies.length = 0;
});

const connectedUser = (harness = h) => harness.newConnectedUser();

const askBody = (user: { id: number; sessionId: string }, question: string, extra: Record<string, unknown> = {}) => ({
  question,
  session_id: user.sessionId,
  user_id: user.id,
  ...extra,
});

describe("POST /ask", () => {
  it("answers with the text, the SQL it ran, the rows, the thread and the token usage", async () => {
    const user = await connectedUser();
    answerWithQuery();
    const res = await h.call("POST", "/ask", { token: user.token, json: askBody(user, "How many albums are there?") });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      answer: "There are 347 albums.",
      sql: [COUNT_SQL],
      statements: [{ sql: COUNT_SQL, outcome: "ok", row_count: 1 }],
      result: { columns: ["albums"], rows: [[347]], row_count: 1, truncated: false },
      thread_id: user.sessionId,
      session_id: user.sessionId,
      usage: { prompt_tokens: 280, completion_tokens: 23, total_tokens: 303, estimated: false },
      steps: 2,
      elapsed_ms: expect.any(Number),
      // No open alert on Album (health-aware results: tests/api/mcp.test.ts).
      health: [],
    });
    // A JSON client reads nothing as it comes: plain completions, usage from their `usage`.
    expect(fake.requests.slice(-2).map((r) => r.stream ?? false)).toEqual([false, false]);
    const system = textOf(fake.requests.at(-2)!.messages[0]);
    expect(system).toContain("SQLite");
    expect(system).toContain("Album(");
  });

  it("takes the user and the session from the token when the body leaves them out", async () => {
    const user = await connectedUser();
    answerWithQuery();
    const res = await h.call("POST", "/ask", { token: user.token, json: { question: "How many albums are there?" } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ sql: [COUNT_SQL], session_id: user.sessionId, thread_id: user.sessionId });
    // Seed 004's fields still count when sent: someone else's user_id is 403 even without a session_id.
    const other = await h.newUser();
    const impostor = await h.call("POST", "/ask", { token: user.token, json: { question: "hi", user_id: other.id } });
    expect(impostor.status).toBe(403);
    // The default is the caller's own session: one that connected nothing answers seed 004's 409.
    const idle = await h.call("POST", "/ask", { token: other.token, json: { question: "hi" } });
    expect(idle.status).toBe(409);
  });

  it("streams steps as server-sent events when asked to", async () => {
    const user = await connectedUser();
    replies.push({ toolCalls: [{ name: "run_query", args: { sql: COUNT_SQL } }] });
    replies.push({ content: "347 albums.", chunks: ["347 ", "albums."] });
    const res = await h.call("POST", "/ask", { token: user.token, json: askBody(user, "How many albums?"), headers: { accept: "text/event-stream" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/text\/event-stream/);
    const events = [...res.text.matchAll(/^event: (\S+)$/gm)].map((m) => m[1]);
    expect(events).toEqual(["tool_call", "sql", "rows", "answer_token", "answer_token", "result", "done"]);
    expect(fake.requests.slice(-2).map((r) => r.stream)).toEqual([true, true]);
    const result = JSON.parse(/event: result\ndata: (.*)/.exec(res.text)![1]!);
    expect(result).toMatchObject({ answer: "347 albums.", sql: [COUNT_SQL] });
  });

  it.each([
    { accept: "TEXT/EVENT-STREAM", form: "text/event-stream" },
    { accept: "application/json, text/event-stream", form: "text/event-stream" },
    { accept: "application/json;q=0.5, text/event-stream", form: "text/event-stream" },
    { accept: "text/event-stream;q=0, application/json", form: "application/json" },
    { accept: "text/event-stream;q=0.5, */*", form: "application/json" },
    { accept: "*/*", form: "application/json" },
  ])("reads Accept as media types with their q values: $accept answers $form", async ({ accept, form }) => {
    const user = await connectedUser();
    answerWithQuery();
    const res = await h.call("POST", "/ask", { token: user.token, json: askBody(user, "How many albums?"), headers: { accept } });
    expect(res.status, res.text.slice(0, 300)).toBe(200);
    expect(res.headers.get("content-type")).toMatch(new RegExp(`^${form}`));
  });

  it("tells an SSE client to drop what the model said before a call, so what it shows ends as the answer", async () => {
    const user = await connectedUser();
    replies.push({ preamble: "Let me check that for you.", toolCalls: [{ name: "run_query", args: { sql: COUNT_SQL } }] });
    replies.push({ content: "347 albums.", chunks: ["347 ", "albums."] });
    const res = await h.call("POST", "/ask", { token: user.token, json: askBody(user, "How many albums?"), headers: { accept: "text/event-stream" } });
    expect(res.status).toBe(200);
    const events = [...res.text.matchAll(/^event: (\S+)\ndata: (.*)$/gm)].map((m) => ({ event: m[1]!, data: JSON.parse(m[2]!) }));
    const names = events.map((e) => e.event);
    expect(names.slice(0, names.indexOf("tool_call") + 1)).toEqual([...names.slice(0, names.indexOf("answer_reset")), "answer_reset", "tool_call"]);
    expect(names.indexOf("answer_reset")).toBeGreaterThan(0);
    // What a client shows: the tokens after the last reset.
    const shown = events.slice(names.lastIndexOf("answer_reset") + 1).filter((e) => e.event === "answer_token").map((e) => e.data.text).join("");
    const result = events.find((e) => e.event === "result")!.data;
    expect(result.sql).toEqual([COUNT_SQL]);
    expect(shown).toBe(result.answer);
  });

  it("refuses a write the model was tricked into, and says so", async () => {
    const user = await connectedUser();
    replies.push({ toolCalls: [{ name: "run_query", args: { sql: "DROP TABLE Album" } }] });
    replies.push((req) => ({ content: `I was not allowed: ${textOf(req.messages.at(-1))}` }));
    const res = await h.call("POST", "/ask", { token: user.token, json: askBody(user, "Drop the albums") });
    expect(res.status).toBe(200);
    expect(res.body.answer).toMatch(/ERROR: refused by the read-only guard/);
    expect(res.body.sql).toEqual(["DROP TABLE Album"]);
    expect(res.body.result).toBeNull();
    answerWithQuery();
    const after = await h.call("POST", "/ask", { token: user.token, json: askBody(user, "How many albums now?") });
    expect(after.body.result.rows).toEqual([[347]]);
  });

  it("says what became of each statement: run, refused by the guard, or failed at the database", async () => {
    const user = await connectedUser();
    const missing = "SELECT * FROM NoSuchTable";
    replies.push({ toolCalls: [{ name: "run_query", args: { sql: "DELETE FROM Album" } }] });
    replies.push({ toolCalls: [{ name: "run_query", args: { sql: missing } }] });
    answerWithQuery();
    const res = await h.call("POST", "/ask", { token: user.token, json: { question: "How many albums, after deleting them?" } });
    expect(res.status).toBe(200);
    expect(res.body.sql).toEqual(["DELETE FROM Album", missing, COUNT_SQL]);
    expect(res.body.statements).toEqual([
      { sql: "DELETE FROM Album", outcome: "refused", rule: expect.any(String), error: expect.stringMatching(/read-only guard/) },
      { sql: missing, outcome: "error", code: "sql_failed", error: expect.stringMatching(/NoSuchTable/) },
      { sql: COUNT_SQL, outcome: "ok", row_count: 1 },
    ]);
    // The refusal's rule is the one /query names for the same statement.
    const direct = await h.call("POST", "/query", { token: user.token, json: { sql: "DELETE FROM Album" } });
    expect(res.body.statements[0].rule).toBe(direct.body.rule);
  });

  it("shows a statement too long to run by its first 4,096 characters, not the hundreds of KB the model sent", async () => {
    const user = await connectedUser();
    // Past QUERY_MAX_SQL_CHARS (100,000), within the 256 KiB a call's arguments may be.
    const huge = `SELECT 1 AS n${" ".repeat(200_000)}`;
    replies.push({ toolCalls: [{ name: "run_query", args: { sql: huge } }] });
    replies.push({ content: "Nothing ran." });
    const res = await h.call("POST", "/ask", { token: user.token, json: { question: "Run my long statement" } });
    expect(res.status).toBe(200);
    expect(res.body.statements).toEqual([{ sql: expect.stringMatching(/^SELECT 1 AS n {4083}… \(195917 more characters\)$/), outcome: "refused", rule: "too_large", error: expect.any(String) }]);
    expect(res.body.sql).toEqual([res.body.statements[0].sql]);
    expect(res.text.length).toBeLessThan(20_000);
  });

  it("shows a long statement that ran whole, where QUERY_MAX_SQL_CHARS lets it run", async () => {
    const roomy = await createHarness({ env: { OPENAI_BASE_URL: fake.baseUrl, OPENAI_MODEL: "fake-model", OPENAI_TIMEOUT_MS: "1500", QUERY_MAX_SQL_CHARS: "300000" } });
    try {
      const user = await roomy.newConnectedUser();
      const long = `SELECT 1 AS n${" ".repeat(150_000)}`;
      replies.push({ toolCalls: [{ name: "run_query", args: { sql: long } }] });
      replies.push({ content: "One." });
      const res = await roomy.call("POST", "/ask", { token: user.token, json: { question: "Run my long statement" } });
      expect(res.status, res.text).toBe(200);
      expect(res.body.statements).toEqual([expect.objectContaining({ outcome: "ok" })]);
      expect(res.body.sql).toEqual([long]);
    } finally {
      await roomy.close();
    }
  });

  it("remembers the conversation per thread, across instances sharing Redis", async () => {
    const user = await connectedUser();
    const second = await createHarness({ shareWith: h, env: { OPENAI_BASE_URL: fake.baseUrl, OPENAI_TIMEOUT_MS: "1500" } });
    try {
      answerWithQuery();
      await h.call("POST", "/ask", { token: user.token, json: askBody(user, "How many albums are there?", { thread_id: "t-1" }) });
      answerWithQuery("SELECT COUNT(*) FROM Artist", "275 artists.");
      const seen = fake.requests.length;
      const res = await second.call("POST", "/ask", { token: user.token, json: askBody(user, "And artists?", { thread_id: "t-1" }) });
      expect(res.status).toBe(200);
      expect(res.body.thread_id).toBe("t-1");
      const history = fake.requests[seen]!.messages.map(textOf).join("\n");
      expect(history).toContain("How many albums are there?");
      expect(history).toContain("There are 347 albums.");
      // Another thread starts fresh.
      answerWithQuery();
      const before = fake.requests.length;
      await second.call("POST", "/ask", { token: user.token, json: askBody(user, "Fresh question", { thread_id: "t-2" }) });
      expect(fake.requests[before]!.messages.map(textOf).join("\n")).not.toContain("How many albums are there?");
    } finally {
      await second.close();
    }
  });

  /** What the model was sent with `question`, asked in `user`'s thread: the history it got. */
  const historySeenBy = async (user: { id: number; sessionId: string; token: string }, question: string) => {
    answerWithQuery();
    const seen = fake.requests.length;
    expect((await h.call("POST", "/ask", { token: user.token, json: askBody(user, question) })).status).toBe(200);
    return fake.requests[seen]!.messages.map(textOf).join("\n");
  };

  it("keeps a thread's turns on one database out of its questions on another (connect_db between them)", async () => {
    const user = await connectedUser();
    const other = (await h.call("POST", "/databases/add_db_connection", { token: user.token, json: (await sqliteTarget(h.sqliteRoot)).body })).body.db_connection.id;
    const [first] = (await h.call("GET", "/databases", { token: user.token })).body;
    const historyOf = (question: string) => historySeenBy(user, question);
    await historyOf("How many albums on the first?");
    expect((await h.call("POST", `/databases/connect_db/${other}`, { token: user.token })).status).toBe(200);
    expect(await historyOf("How many albums on the second?")).not.toContain("How many albums on the first?");
    expect((await h.call("POST", `/databases/connect_db/${first.id}`, { token: user.token })).status).toBe(200);
    const back = await historyOf("And again on the first?");
    expect(back).toContain("How many albums on the first?");
    expect(back).not.toContain("How many albums on the second?");
  });

  it("keeps a thread's turns on one database out of its questions once its connection is moved to another (PUT)", async () => {
    const user = await connectedUser();
    const [connection] = (await h.call("GET", "/databases", { token: user.token })).body;
    const historyOf = (question: string) => historySeenBy(user, question);
    const moveTo = async (databaseName: string) => expect((await h.call("PUT", `/databases/${connection.id}`, { token: user.token, json: { database_name: databaseName } })).status).toBe(200);
    await historyOf("How many albums before the move?");
    await moveTo((await sqliteTarget(h.sqliteRoot)).body.database_name as string);
    expect(await historyOf("How many albums after the move?")).not.toContain("How many albums before the move?");
    await moveTo(connection.database_name);
    const back = await historyOf("And back where it was?");
    expect(back).toContain("How many albums before the move?");
    expect(back).not.toContain("How many albums after the move?");
  });

  it("answers seed 004's errors: another user's session, no database connected, a user_id that is not yours", async () => {
    const alice = await connectedUser();
    const bob = await h.newUser();
    const foreign = await h.call("POST", "/ask", { token: bob.token, json: askBody({ id: bob.id, sessionId: alice.sessionId }, "hi") });
    expect(foreign.status).toBe(404);
    expect(foreign.body.detail).toBe("Session ID does not belong to the authenticated user or session not found");
    const idle = await h.call("POST", "/ask", { token: bob.token, json: askBody(bob, "hi") });
    expect(idle.status).toBe(409);
    expect(idle.body.detail).toBe("No database connected for this session. Please connect a database first.");
    const impostor = await h.call("POST", "/ask", { token: bob.token, json: askBody({ id: alice.id, sessionId: bob.sessionId }, "hi") });
    expect(impostor.status).toBe(403);
  });

  it("maps a failing model server to 502 and a hanging one to 504", async () => {
    const user = await connectedUser();
    replies.push({ fail: "http500" }, { fail: "http500" });
    const failed = await h.call("POST", "/ask", { token: user.token, json: askBody(user, "Anything?") });
    expect(failed.status).toBe(502);
    expect(failed.body.code).toBe("model_failed");
    replies.push({ fail: "hang" }, { fail: "hang" });
    const hung = await h.call("POST", "/ask", { token: user.token, json: askBody(user, "Anything?") });
    expect(hung.status).toBe(504);
    expect(hung.body.code).toBe("model_timeout");
  });

  it("rejects an empty or oversized question with 422", async () => {
    const user = await connectedUser();
    expect((await h.call("POST", "/ask", { token: user.token, json: askBody(user, "") })).status).toBe(422);
    const long = await h.call("POST", "/ask", { token: user.token, json: askBody(user, "x".repeat(2001)) });
    expect(long.status).toBe(422);
    expect(long.body.errors[0].path).toBe("body.question");
  });
});

describe("POST /ask, a user's questions at once", () => {
  it("answers 429 past ASK_MAX_CONCURRENT (4) of one user's questions under way, and frees each turn with its answer", async () => {
    const user = await connectedUser();
    const other = await connectedUser();
    // Four questions whose model never answers (each tried twice), held until the model's timeout.
    for (let i = 0; i < 8; i++) replies.push({ fail: "hang" });
    const ask = (who: typeof user, sse: boolean) =>
      h.call("POST", "/ask", { token: who.token, json: askBody(who, "Anything?"), headers: sse ? { accept: "text/event-stream" } : {} });
    const held = [ask(user, false), ask(user, true), ask(user, false), ask(user, true)];
    await new Promise((resolve) => setTimeout(resolve, 300));
    const refused = await ask(user, false);
    expect(refused.status).toBe(429);
    expect(refused.body.detail).toMatch(/^At most 4 questions at once per user \(ASK_MAX_CONCURRENT\)/);
    expect(refused.headers.get("retry-after")).toBe("1");
    expect((await Promise.all(held)).map((r) => r.status)).toEqual([504, 504, 504, 504]);
    // Every turn came back, however its question ended; another user never waited on them.
    answerWithQuery();
    expect((await ask(user, true)).status).toBe(200);
    answerWithQuery();
    expect((await ask(other, false)).status).toBe(200);
  });
});

describe("the MCP ask tool, a user's questions at once", () => {
  it("shares the user's ASK_MAX_CONCURRENT turns with POST /ask: past them, a tool error saying so", async () => {
    const user = await connectedUser();
    const connectionId = (await h.call("GET", "/databases", { token: user.token })).body[0].id as number;
    for (let i = 0; i < 8; i++) replies.push({ fail: "hang" });
    const mcpAsk = (id: number) =>
      h.call("POST", "/mcp", {
        token: user.token,
        headers: { accept: "application/json, text/event-stream" },
        json: { jsonrpc: "2.0", id, method: "tools/call", params: { name: "ask", arguments: { connection_id: connectionId, question: "Anything?" } } },
      });
    const held = [mcpAsk(1), mcpAsk(2), h.call("POST", "/ask", { token: user.token, json: askBody(user, "Anything?") }), mcpAsk(3)];
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await h.call("POST", "/ask", { token: user.token, json: askBody(user, "Anything?") })).status).toBe(429);
    const refused = (await mcpAsk(4)).body.result;
    expect(refused.isError).toBe(true);
    expect(refused.structuredContent).toMatchObject({ code: "rate_limited" });
    expect(refused.structuredContent.detail).toMatch(/^At most 4 questions at once per user \(ASK_MAX_CONCURRENT\)/);
    await Promise.all(held);
    // Each MCP question gave its turn back when it ended.
    answerWithQuery();
    expect((await h.call("POST", "/ask", { token: user.token, json: askBody(user, "How many albums?") })).status).toBe(200);
  });
});

describe("POST /ask against a model that asks too much", () => {
  it(`runs at most ${MAX_TOOL_CALLS_PER_REPLY} tool calls of one reply, and sends back only theirs`, async () => {
    const user = await connectedUser();
    replies.push({ toolCalls: Array.from({ length: 60 }, (_, i) => ({ name: "run_query", args: { sql: `SELECT ${i} AS n` } })) });
    replies.push({ content: "Done." });
    const res = await h.call("POST", "/ask", { token: user.token, json: askBody(user, "Count, many times") });
    expect(res.status, res.text).toBe(200);
    expect(res.body.statements).toHaveLength(MAX_TOOL_CALLS_PER_REPLY);
    expect(fake.requests.at(-1)!.messages.filter((m) => m.role === "tool")).toHaveLength(MAX_TOOL_CALLS_PER_REPLY);
  });

  it(`streamed, a reply of thousands of tool calls costs the event loop little, and ${MAX_TOOL_CALLS_PER_REPLY} of them run`, async () => {
    const user = await connectedUser();
    // Two chunks a call (the fake splits each call's arguments): merged chunk by chunk by
    // LangChain, 5,000 calls held the event loop for tens of seconds.
    replies.push({ toolCalls: Array.from({ length: 5_000 }, (_, i) => ({ name: "run_query", args: { sql: `SELECT ${i} AS n` } })) });
    replies.push({ content: "Done." });
    const histogram = monitorEventLoopDelay({ resolution: 10 });
    histogram.enable();
    const res = await h.call("POST", "/ask", { token: user.token, json: askBody(user, "Count, many times"), headers: { accept: "text/event-stream" } });
    histogram.disable();
    expect(res.status).toBe(200);
    const result = JSON.parse(/event: result\ndata: (.*)/.exec(res.text)![1]!);
    expect(result.statements).toHaveLength(MAX_TOOL_CALLS_PER_REPLY);
    expect(result.statements[15].sql).toBe("SELECT 15 AS n");
    expect(histogram.max / 1e6).toBeLessThan(1_000);
  });

  it.each(["application/json", "text/event-stream"])("fails a reply whose tool-call arguments pass 256 KiB as a broken model server (%s)", async (accept) => {
    const user = await connectedUser();
    const before = fake.requests.length;
    // 600 KB, streamed in two events of 300 KB (each under the 1 MiB an event may be).
    replies.push({ toolCalls: [{ name: "run_query", args: { sql: `SELECT '${"x".repeat(600_000)}'` } }] });
    replies.push({ content: "Done." });
    const res = await h.call("POST", "/ask", { token: user.token, json: askBody(user, "q"), headers: { accept } });
    expect(res.status, res.text.slice(0, 500)).toBe(502);
    expect(res.body).toMatchObject({ code: "model_failed", model_cause: "not_chat_completion" });
    expect(res.body.detail).toMatch(/sent a tool call whose arguments are longer than 262144 characters/);
    // Never sent back to the model with the history.
    expect(fake.requests.length).toBe(before + 1);
  });

  it("asks for at most OPENAI_MAX_TOKENS (4,096 unless set), and says so when an answer ran into it", async () => {
    const user = await connectedUser();
    replies.push({ content: "The albums are: Let There Be Rock, Big Ones, Jagged Little", finishReason: "length" });
    const before = fake.requests.length;
    const res = await h.call("POST", "/ask", { token: user.token, json: askBody(user, "List every album") });
    expect(res.status, res.text).toBe(200);
    expect(fake.requests[before]!.max_tokens).toBe(4096);
    expect(res.body.answer).toBe(
      "The albums are: Let There Be Rock, Big Ones, Jagged Little\n\n[The answer was cut off: the model reached its limit of 4096 tokens a reply (OPENAI_MAX_TOKENS, at most a quarter of MODEL_CONTEXT_TOKENS).]",
    );
  });

  it("asks for no more than a quarter of a known context window, which the prompt leaves for the reply", async () => {
    // A server with a 4,096-token window (vLLM --max-model-len 4096) refuses max_tokens 4096.
    const small = await createHarness({ env: { OPENAI_BASE_URL: fake.baseUrl, OPENAI_TIMEOUT_MS: "1500", MODEL_CONTEXT_TOKENS: "4096" } });
    try {
      const user = await small.newConnectedUser();
      replies.push({ content: "Cut", finishReason: "length" });
      const before = fake.requests.length;
      const res = await small.call("POST", "/ask", { token: user.token, json: { question: "List every album" } });
      expect(res.status, res.text).toBe(200);
      expect(fake.requests[before]!.max_tokens).toBe(1024);
      expect(res.body.answer).toBe("Cut\n\n[The answer was cut off: the model reached its limit of 1024 tokens a reply (OPENAI_MAX_TOKENS, at most a quarter of MODEL_CONTEXT_TOKENS).]");
    } finally {
      await small.close();
    }
  });

  it("keeps a few thousand characters of an answer for the conversation, not megabytes", async () => {
    const user = await connectedUser();
    replies.push({ content: "x".repeat(200_000) });
    expect((await h.call("POST", "/ask", { token: user.token, json: askBody(user, "Say a lot") })).status).toBe(200);
    replies.push({ content: "Short." });
    expect((await h.call("POST", "/ask", { token: user.token, json: askBody(user, "And now?") })).status).toBe(200);
    const earlier = fake.requests.at(-1)!.messages.find((m) => m.role === "assistant");
    expect(textOf(earlier).length).toBeGreaterThan(1_000);
    expect(textOf(earlier).length).toBeLessThan(10_000);
  });
});

describe("POST /ask limits and configuration", () => {
  it("rate-limits questions per user with 429", async () => {
    const tight = await createHarness({ env: { OPENAI_BASE_URL: fake.baseUrl, ASK_PER_MINUTE: "1" } });
    try {
      const user = await connectedUser(tight);
      answerWithQuery();
      expect((await tight.call("POST", "/ask", { token: user.token, json: askBody(user, "q1") })).status).toBe(200);
      const limited = await tight.call("POST", "/ask", { token: user.token, json: askBody(user, "q2") });
      expect(limited.status).toBe(429);
      expect(limited.headers.get("retry-after")).toBeTruthy();
      // The limit is checked first, whatever else is wrong with the question.
      const elsewhere = await tight.call("POST", "/ask", { token: user.token, json: askBody({ id: user.id, sessionId: "no-such-session" }, "q3") });
      expect(elsewhere.status).toBe(429);
    } finally {
      await tight.close();
    }
  });

  it("limits the model tokens a user's questions use per hour, failed ones too, across instances and the MCP ask tool", async () => {
    const env = { OPENAI_BASE_URL: fake.baseUrl, OPENAI_TIMEOUT_MS: "1500", ASK_PER_MINUTE: "1000", ASK_TOKENS_PER_HOUR: "700" };
    const tight = await createHarness({ sessions: "redis", env });
    const second = await createHarness({ shareWith: tight, env });
    try {
      const user = await connectedUser(tight);
      const other = await connectedUser(tight);
      const ask = (harness: Harness, who = user) => harness.call("POST", "/ask", { token: who.token, json: askBody(who, "How many albums?") });
      // 303 tokens (answerWithQuery), then 350 of a question whose model failed after its first
      // call (billed all the same): 653, under 700, so the next question may start.
      answerWithQuery();
      expect((await ask(tight)).status).toBe(200);
      replies.push({ toolCalls: [{ name: "run_query", args: { sql: COUNT_SQL } }], usage: { prompt_tokens: 300, completion_tokens: 50 } });
      replies.push({ fail: "http500" }, { fail: "http500" });
      expect((await ask(second)).status).toBe(502);
      answerWithQuery();
      expect((await ask(second)).status).toBe(200);
      // 956 spent: no instance asks the model again for this user within the hour, however asked.
      const requests = fake.requests.length;
      for (const harness of [tight, second]) {
        const refused = await ask(harness);
        expect(refused.status).toBe(429);
        expect(refused.body.detail).toContain("ASK_TOKENS_PER_HOUR");
        expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
      }
      const connectionId = (await tight.call("GET", "/databases", { token: user.token })).body[0].id as number;
      const mcp = await tight.call("POST", "/mcp", {
        token: user.token,
        headers: { accept: "application/json, text/event-stream" },
        json: { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "ask", arguments: { connection_id: connectionId, question: "How many albums?" } } },
      });
      expect(mcp.body.result).toMatchObject({ isError: true, structuredContent: { code: "rate_limited" } });
      expect(fake.requests.length).toBe(requests);
      // Another user's budget is their own.
      answerWithQuery();
      expect((await ask(tight, other)).status).toBe(200);
    } finally {
      await second.close();
      await tight.close();
    }
  });

  it("limits the new conversations a user starts (each is a list kept in Redis), not the turns of one", async () => {
    const tight = await createHarness({ env: { OPENAI_BASE_URL: fake.baseUrl, ASK_PER_MINUTE: "1000", CONVERSATION_MAX_NEW_PER_USER: "2" } });
    try {
      const user = await connectedUser(tight);
      const ask = (thread: string) => tight.call("POST", "/ask", { token: user.token, json: askBody(user, "How many albums?", { thread_id: thread }) });
      for (const thread of ["c-1", "c-2", "c-1", "c-2"]) {
        answerWithQuery();
        expect((await ask(thread)).status, thread).toBe(200);
      }
      const third = await ask("c-3");
      expect(third.status).toBe(429);
      expect(third.body).toMatchObject({ code: "rate_limited", detail: expect.stringContaining("CONVERSATION_MAX_NEW_PER_USER") });
      expect(Number(third.headers.get("retry-after"))).toBeGreaterThan(0);
    } finally {
      await tight.close();
    }
  });

  it("keeps a conversation from its first turn, and does not make again one that expired during a question", async () => {
    const tight = await createHarness({
      store: "postgresql",
      sessions: "redis",
      env: { OPENAI_BASE_URL: fake.baseUrl, ASK_PER_MINUTE: "1000", CONVERSATION_MAX_NEW_PER_USER: "1", CONVERSATION_TTL_SECONDS: "600" },
    });
    try {
      const user = await connectedUser(tight);
      const list = `${tight.redis!.prefix}list:thread:${user.id}:c-1`;
      const ask = () => tight.call("POST", "/ask", { token: user.token, json: askBody(user, "How many albums?", { thread_id: "c-1" }) });
      answerWithQuery();
      expect((await ask()).status).toBe(200);
      // A later turn does not renew the conversation's TTL: it is counted from the first.
      await tight.redis!.raw.expire(list, 100);
      answerWithQuery();
      expect((await ask()).status).toBe(200);
      expect(await tight.redis!.raw.lrange(list, 0, -1)).toHaveLength(2);
      expect(await tight.redis!.raw.ttl(list)).toBeLessThanOrEqual(100);
      // The conversation expires while the model thinks: the answer stands, the list is not made
      // again uncounted, and the thread's next question is a new conversation (over the limit of 1).
      replies.push(async () => {
        await tight.redis!.raw.del(list);
        return { toolCalls: [{ name: "run_query", args: { sql: COUNT_SQL } }] };
      });
      replies.push({ content: "There are 347 albums." });
      const expired = await ask();
      expect({ status: expired.status, answer: expired.body.answer }).toEqual({ status: 200, answer: "There are 347 albums." });
      expect(await tight.redis!.raw.exists(list)).toBe(0);
      const next = await ask();
      expect({ status: next.status, code: next.body.code }).toEqual({ status: 429, code: "rate_limited" });
    } finally {
      await tight.close();
    }
  });

  it("refuses tool-call arguments nested past any tool's as an invalid call, streamed or not, and gives the turn back", async () => {
    const tight = await createHarness({ env: { OPENAI_BASE_URL: fake.baseUrl, ASK_PER_MINUTE: "1000", ASK_MAX_CONCURRENT: "1" } });
    try {
      const user = await connectedUser(tight);
      // 40 KB of valid JSON that a recursive walk (JSON.stringify) cannot take.
      const deep = `{"sql":"SELECT 1","x":${'{"a":'.repeat(6000)}1${"}".repeat(6000)}}`;
      for (const accept of ["text/event-stream", "application/json"]) {
        replies.push({ toolCalls: [{ name: "run_query", rawArgs: deep }], usage: null });
        replies.push({ content: "Nothing ran.", usage: null });
        const res = await tight.call("POST", "/ask", { token: user.token, json: askBody(user, "q"), headers: { accept } });
        expect(res.status, accept).toBe(200);
        if (accept === "application/json") expect(res.body).toMatchObject({ answer: "Nothing ran.", sql: [] });
        else expect(res.text).toMatch(/event: result\ndata: \{"answer":"Nothing ran\."/);
        // The model was told why nothing ran.
        expect(JSON.stringify(fake.requests.at(-1)!.messages)).toContain("nested deeper than 32 levels");
      }
      // Both questions gave their one turn (ASK_MAX_CONCURRENT) back.
      answerWithQuery();
      expect((await tight.call("POST", "/ask", { token: user.token, json: askBody(user, "How many albums?") })).status).toBe(200);
    } finally {
      await tight.close();
    }
  });

  it("keeps an API key's conversations apart from its user's logins', whatever thread_id the login names", async () => {
    const user = await connectedUser();
    const connectionId = (await h.call("GET", "/databases", { token: user.token })).body[0].id;
    // A key for /ask alone: it connects its own session, and runs no SQL of its own.
    const created = await h.call("POST", "/api/keys", { token: user.token, json: { name: "k", scopes: ["ask"], connection_ids: [connectionId] } });
    expect(created.status).toBe(201);
    expect((await h.call("POST", `/databases/connect_db/${connectionId}`, { token: created.body.key })).status).toBe(200);
    expect((await h.call("GET", "/databases/session-status", { token: created.body.key })).body).toMatchObject({ database_connected: true, db_id: connectionId });
    expect((await h.call("POST", "/query", { token: created.body.key, json: { sql: COUNT_SQL } })).status).toBe(403);
    answerWithQuery(COUNT_SQL, "The key's own answer.");
    const byKey = await h.call("POST", "/ask", { token: created.body.key, json: { question: "How many albums?", thread_id: "t1" } });
    expect(byKey.status, byKey.text).toBe(200);
    // The login names the thread as the key's is kept (`key:<id>:t1` under the user), and its own t1.
    for (const thread of [`key:${created.body.id}:t1`, "t1"]) {
      answerWithQuery();
      expect((await h.call("POST", "/ask", { token: user.token, json: askBody(user, "And artists?", { thread_id: thread }) })).status).toBe(200);
      expect(JSON.stringify(fake.requests.at(-2)!.messages)).not.toContain("The key's own answer.");
    }
  });

  it("answers a streamed question's refusals with their real status as JSON, before any event", async () => {
    const sse = { accept: "text/event-stream" };
    const tight = await createHarness({ env: { OPENAI_BASE_URL: fake.baseUrl, ASK_PER_MINUTE: "1" } });
    const bare = await createHarness();
    try {
      const alice = await connectedUser(tight);
      // One user per refusal: each question counts against its asker's limit of 1.
      const [bob, carol] = [await tight.newUser(), await tight.newUser()];
      const refusals = [
        [await tight.call("POST", "/ask", { token: bob.token, json: { question: "q", user_id: alice.id }, headers: sse }), 403, "forbidden"],
        [await tight.call("POST", "/ask", { token: bob.token, json: { question: "q", session_id: alice.sessionId }, headers: sse }), 404, "not_found"],
        [await tight.call("POST", "/ask", { token: carol.token, json: { question: "q" }, headers: sse }), 409, "no_database_connected"],
      ] as const;
      answerWithQuery();
      expect((await tight.call("POST", "/ask", { token: alice.token, json: { question: "q1" }, headers: sse })).status).toBe(200);
      const limited = await tight.call("POST", "/ask", { token: alice.token, json: { question: "q2" }, headers: sse });
      const bareUser = await connectedUser(bare);
      const noModel = await bare.call("POST", "/ask", { token: bareUser.token, json: { question: "q" }, headers: sse });
      for (const [res, status, code] of [...refusals, [limited, 429, "rate_limited"], [noModel, 503, "model_not_configured"]] as const) {
        expect({ status: res.status, type: res.headers.get("content-type"), code: res.body?.code }).toEqual({ status, type: "application/json", code });
        expect(res.text).not.toContain("event:");
      }
      expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
    } finally {
      await tight.close();
      await bare.close();
    }
  });

  it("answers 503 saying how to configure a model when none is, while the rest works", async () => {
    const bare = await createHarness();
    try {
      const user = await connectedUser(bare);
      const res = await bare.call("POST", "/ask", { token: user.token, json: askBody(user, "How many albums?") });
      expect(res.status).toBe(503);
      expect(res.body.code).toBe("model_not_configured");
      expect(res.body.detail).toMatch(/OPENAI_BASE_URL/);
      expect((await bare.call("POST", "/query", { token: user.token, json: { sql: COUNT_SQL } })).body.data.rows).toEqual([[347]]);
      // Who may ask comes first: another user's user_id is refused as such, model or not.
      const impostor = await bare.call("POST", "/ask", { token: user.token, json: { question: "How many albums?", user_id: user.id + 1 } });
      expect({ status: impostor.status, code: impostor.body.code }).toEqual({ status: 403, code: "forbidden" });
      // So is a question that could never be asked: what to fix in the request, model or not.
      const long = await bare.call("POST", "/ask", { token: user.token, json: askBody(user, "x".repeat(2001)) });
      expect({ status: long.status, code: long.body.code, detail: long.body.detail }).toEqual({
        status: 422,
        code: "invalid_input",
        detail: "Invalid input: body.question: must be 1 to 2000 characters",
      });
      const blank = await bare.call("POST", "/ask", { token: user.token, json: askBody(user, " \u3000\n") });
      expect({ status: blank.status, detail: blank.body.detail }).toEqual({ status: 422, detail: "Invalid input: body.question: must not be blank (only spaces)" });
      // And a session that is not the user's (seed 004 validates it first), or has no database.
      const stranger = await bare.newUser();
      const theirs = await bare.call("POST", "/ask", { token: stranger.token, json: { question: "How many albums?", session_id: user.sessionId } });
      expect({ status: theirs.status, code: theirs.body.code }).toEqual({ status: 404, code: "not_found" });
      const unconnected = await bare.call("POST", "/ask", { token: stranger.token, json: { question: "How many albums?" } });
      expect({ status: unconnected.status, code: unconnected.body.code }).toEqual({ status: 409, code: "no_database_connected" });
    } finally {
      await bare.close();
    }
  });
});
