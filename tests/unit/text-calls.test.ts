// Calls written as text: each form small models use is read as the call it spells out, a cut-off
// call is recognised and never run, and an answer that merely mentions SQL is not a call.

import { describe, expect, it } from "vitest";

import { contextBudget } from "../../agents/context-budget.js";
import { gatedTokens } from "../../agents/model-call.js";
import { callsInText } from "../../agents/text-calls.js";
import { MAX_TOOL_CALLS_PER_REPLY } from "../../agents/tool-arguments.js";
import { callAsText, type TextCallStyle } from "../support/model-servers.js";

const SQL = "SELECT COUNT(*) AS n FROM Album WHERE Title LIKE '%```%'";
const auto = { offered: ["find_tables", "describe_tables", "run_query"], anySqlBlock: false };
const text = { offered: ["run_query"], anySqlBlock: true };

describe("callsInText", () => {
  // A reply is up to 16 MiB of whatever the model server sends. Each of these took the reading
  // minutes to days (work growing with the square of the length), with every request waiting;
  // now they end at once (the test's own timeout is the bound).
  it.each([
    ["newlines", "\n".repeat(2_000_000) + "x", 0],
    ["unclosed reasoning tags", "<think>".repeat(300_000), 0],
    ["closed reasoning blocks", "<think></think>".repeat(200_000) + "ok", 0],
    ["unclosed tool_call tags", "<tool_call>".repeat(300_000), 1],
    ["functions. lines", "functions.run_query:\n{\n".repeat(100_000), 100_000],
    ["trailing whitespace after a call", "functions.run_query:\n{" + " ".repeat(2_000_000) + "x", 1],
  ])("reads a hostile reply of %s in time proportional to its length", (_what, reply, calls) => {
    expect(callsInText(reply, auto)).toHaveLength(calls);
  });

  it.each(["fenced", "reasoning-fenced", "json", "tool_call-tags", "tool-request"] satisfies TextCallStyle[])("reads a %s call", (style) => {
    const sql = style === "fenced" || style === "reasoning-fenced" ? "SELECT COUNT(*) AS n FROM Album" : SQL;
    expect(callsInText(callAsText(style, sql), auto)).toEqual([{ name: "run_query", args: { sql } }]);
  });

  it("reads Mistral's [TOOL_CALLS], llama-cpp-python's functions.NAME: and OpenAI-shaped JSON with string arguments", () => {
    expect(callsInText(`[TOOL_CALLS] [{"name": "find_tables", "arguments": {"query": "invoice"}}]`, auto)).toEqual([{ name: "find_tables", args: { query: "invoice" } }]);
    expect(callsInText(`functions.run_query:\n{"sql": "SELECT 1"}`, auto)).toEqual([{ name: "run_query", args: { sql: "SELECT 1" } }]);
    expect(callsInText(JSON.stringify({ function: { name: "run_query", arguments: JSON.stringify({ sql: "SELECT 2" }) } }), auto)).toEqual([{ name: "run_query", args: { sql: "SELECT 2" } }]);
    expect(callsInText(`<tool_call>{"name": "run_query", "parameters": {"sql": "SELECT 3"}}</tool_call>`, auto)).toEqual([{ name: "run_query", args: { sql: "SELECT 3" } }]);
  });

  it("marks a call cut off midway, in every form, so that nothing of it runs", () => {
    expect(callsInText(`<tool_call>{"name": "run_query", "arguments": {"sql": "SELECT * FROM Album WHERE`, auto)).toEqual([
      { name: "run_query", raw: `{"name": "run_query", "arguments": {"sql": "SELECT * FROM Album WHERE`, error: "cut off: the <tool_call> was never closed" },
    ]);
    expect(callsInText("Here it is:\n```sql\nSELECT * FROM Album WHERE", auto)).toEqual([
      { name: "run_query", raw: "```sql\nSELECT * FROM Album WHERE", error: "cut off: the ```sql block was never closed" },
    ]);
    expect(callsInText(`{"name": "run_query", "arguments": {"sql": "SELECT * FROM Al`, auto)).toEqual([
      { name: "run_query", raw: `{"name": "run_query", "arguments": {"sql": "SELECT * FROM Al`, error: "not valid JSON (cut off or malformed)" },
    ]);
  });

  it("runs no call whose JSON nests deeper than any tool's arguments", () => {
    const deep = `{"name": "run_query", "arguments": {"sql": "SELECT 1", "x": ${'{"a":'.repeat(6000)}1${"}".repeat(6000)}}}`;
    expect(callsInText(`<tool_call>${deep}</tool_call>`, auto)).toEqual([{ name: "run_query", raw: deep, error: "not valid JSON (cut off or malformed)" }]);
  });

  it("takes no answer for a call: SQL quoted mid-text, inline SQL, unknown tools, reasoning alone", () => {
    const quoted = "There are 347 albums; I ran\n```sql\nSELECT COUNT(*) FROM Album\n```\nwhich counts every row.";
    expect(callsInText(quoted, auto)).toEqual([]);
    expect(callsInText("I would run SELECT COUNT(*) FROM Album to count them.", text)).toEqual([]);
    expect(callsInText(`{"name": "drop_everything", "arguments": {"sql": "DROP TABLE Album"}}`, auto)).toEqual([]);
    expect(callsInText("<think>```sql\nSELECT 1\n```</think>The answer is 1.", text)).toEqual([]);
    // Under the text protocol any sql block is a call: the prompt says answers carry none.
    expect(callsInText(quoted, text)).toEqual([{ name: "run_query", args: { sql: "SELECT COUNT(*) FROM Album" } }]);
  });

  it("refuses two statements in two blocks at once, and runs no block with the run_query tool not offered", () => {
    const two = "```sql\nSELECT 1\n```\n```sql\nSELECT 2\n```";
    expect(callsInText(two, text)).toEqual([{ name: "run_query", raw: "SELECT 1\n---\nSELECT 2", error: "2 sql blocks in one reply; send exactly one" }]);
    expect(callsInText("```sql\nSELECT 1\n```", { offered: ["find_tables"], anySqlBlock: true })).toEqual([]);
  });
});

describe("contextBudget", () => {
  const configured = { schemaTokens: 4000, rowsToModel: 50 };

  it("leaves the configured budgets alone without a context size", () => {
    expect(contextBudget(undefined, configured, undefined)).toEqual({ ...configured, resultChars: 12_000, historyTokens: Infinity });
  });

  it("fits schema, rows and history in a small window, with room for instructions and the answer", () => {
    const budget = contextBudget(2048, configured, undefined);
    expect(budget.schemaTokens + budget.resultChars / 3 + budget.historyTokens + 800 + 512).toBeLessThanOrEqual(2048);
    expect(budget.rowsToModel).toBeLessThan(50);
    expect(budget.schemaTokens).toBeGreaterThanOrEqual(100);
    const large = contextBudget(128_000, configured, 1000);
    expect(large).toMatchObject({ schemaTokens: 4000, rowsToModel: 50, resultChars: 12_000 });
  });
});

describe("text from a hostile model server, read in time linear in its length", () => {
  // Each of these held the event loop for seconds to minutes (quadratic or cubic patterns).
  it("reads a fence followed by a long run of spaces, and many opening tags, as no call", () => {
    expect(callsInText(`Here:\n\`\`\`${" ".repeat(200_000)}`, auto)).toEqual([]);
    expect(callsInText(`\`\`\`\t${"\t".repeat(200_000)}x`, text)).toEqual([]);
    const tags = callsInText(`${"<tool_call>".repeat(200_000)}</tool_call>`, auto);
    expect(tags.length).toBeLessThanOrEqual(MAX_TOOL_CALLS_PER_REPLY + 1);
  });

  it("reads a ```sqlite block's statement whole", () => {
    expect(callsInText("```sqlite\nSELECT 1\n```", text)).toEqual([{ name: "run_query", args: { sql: "SELECT 1" } }]);
  });

  it("passes on streamed text that opens with a long run of spaces once it knows it is no call", () => {
    const seen: string[] = [];
    const gate = gatedTokens((t) => seen.push(t), { readTextCalls: true });
    for (let i = 0; i < 200_000; i++) gate(" ");
    gate("The answer");
    gate(" is 4.");
    expect(seen).toEqual([`${" ".repeat(200_000)}The answer`, " is 4."]);
  });
});
