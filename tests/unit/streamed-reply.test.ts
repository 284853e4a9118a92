// A streamed reply merged as its chunks arrive (agents/streamed-reply.ts): what LangChain's
// chunk-by-chunk concat makes of it, at a bounded cost.

import { AIMessageChunk } from "@langchain/core/messages";
import { describe, expect, it } from "vitest";

import { ModelServerFailure } from "../../agents/model-fetch.js";
import { MAX_TOOL_CALL_CHUNKS, StreamedReply } from "../../agents/streamed-reply.js";
import { MAX_TOOL_ARGUMENT_CHARS, MAX_TOOL_CALLS_PER_REPLY } from "../../agents/tool-arguments.js";

const call = (index: number, args: string, id?: string, name?: string) =>
  new AIMessageChunk({ content: "", tool_call_chunks: [{ type: "tool_call_chunk", index, args, ...(id && { id }), ...(name && { name }) }] });

/** What the model server is said to have done wrong (ModelServerFailure's detail). */
function failureOf(add: () => unknown): string {
  try {
    add();
  } catch (err) {
    if (err instanceof ModelServerFailure) return err.detail;
    throw err;
  }
  return "no failure";
}

describe("StreamedReply", () => {
  it("merges text, calls, metadata and usage as LangChain's concat does", () => {
    const chunks = [
      new AIMessageChunk({ content: "Let me ", response_metadata: { model_name: "m" } }),
      new AIMessageChunk({ content: "look." }),
      call(0, '{"sql":', "call_a", "run_query"),
      call(1, '{"table"', "call_b", "describe_table"),
      call(0, '"SELECT 1"}'),
      call(1, ':"Album"}'),
      new AIMessageChunk({ content: "", response_metadata: { finish_reason: "tool_calls" } }),
      new AIMessageChunk({ content: "", usage_metadata: { input_tokens: 10, output_tokens: 5, total_tokens: 15 } }),
    ];
    const reply = new StreamedReply();
    for (const chunk of chunks) expect(reply.add(chunk)).toBe(true);
    const ours = reply.message();
    const theirs = chunks.reduce((a, b) => a.concat(b));
    expect(ours.text).toBe(theirs.text);
    const calls = (m: AIMessageChunk) => (m.tool_call_chunks ?? []).map(({ id, name, args }) => ({ id, name, args }));
    expect(calls(ours)).toEqual(calls(theirs));
    expect(ours.response_metadata).toMatchObject({ model_name: "m", finish_reason: "tool_calls" });
    expect(ours.usage_metadata).toEqual(theirs.usage_metadata);
  });

  it(`stops taking calls past ${MAX_TOOL_CALLS_PER_REPLY}, and the reply ends with them`, () => {
    const reply = new StreamedReply();
    let i = 0;
    while (reply.add(call(i, "{}", `call_${i}`, "run_query"))) i++;
    expect(i).toBe(MAX_TOOL_CALLS_PER_REPLY);
    const message = reply.message();
    expect(message.tool_call_chunks).toHaveLength(MAX_TOOL_CALLS_PER_REPLY);
    expect(message.response_metadata.finish_reason).toBe("tool_calls");
  });

  it("fails a call whose arguments are longer than any tool takes, and a flood of call chunks", () => {
    const long = new StreamedReply();
    long.add(call(0, "x".repeat(MAX_TOOL_ARGUMENT_CHARS), "call_a", "run_query"));
    expect(failureOf(() => long.add(call(0, "x")))).toMatch(/longer than 262144 characters/);
    const many = new StreamedReply();
    for (let i = 0; i < MAX_TOOL_CALL_CHUNKS; i++) many.add(call(0, "x"));
    expect(failureOf(() => many.add(call(0, "x")))).toMatch(new RegExp(`more than ${MAX_TOOL_CALL_CHUNKS} chunks`));
  });
});
