// Tool-call arguments exactly as the model sent them, parsed strictly. LangChain "repairs" the
// arguments of a streamed call with a partial-JSON parser, so `{"sql": "SELECT ... WHERE x = 1`
// cut off mid-stream would run as a shorter, different statement, while a plain completion
// refuses it. Both paths read the raw text here instead: one complete JSON object, or nothing runs.

import { AIMessageChunk, type AIMessage } from "@langchain/core/messages";
import type { InvalidToolCall, ToolCall } from "@langchain/core/messages/tool";

import { nestsDeeperThan } from "../src/json-depth.js";
import { cutText } from "../src/text-cut.js";
import { excerpt, ModelServerFailure } from "./model-fetch.js";

interface RawToolCall {
  id?: string | undefined;
  name?: string | undefined;
  /** The arguments as the server sent them: a JSON text, complete or not. */
  args: string;
}

const MAX_TOOL_NAME_CHARS = 64;

/** A server's `tool_calls` entry as it came: typed by nothing but the server. */
interface OpenAIToolCall {
  id?: unknown;
  function?: { name?: unknown; arguments?: unknown };
}

const textOrUndefined = (value: unknown) => (typeof value === "string" ? value : undefined);

/** A call's arguments as JSON text: what the API says they are. Some servers send the object
 * itself, which is as complete as its text; anything else becomes text that will not parse as
 * an object (a number stays "123": refused with its type), never a crash. */
const argumentsText = (value: unknown) => (typeof value === "string" ? value : value === undefined || value === null ? "" : JSON.stringify(value));

/** The tool calls of a reply with their raw argument text: merged chunks of a stream, or the
 * server's own `tool_calls` of a plain completion (kept by LangChain in additional_kwargs). */
function rawToolCalls(reply: AIMessage | AIMessageChunk): RawToolCall[] {
  if (AIMessageChunk.isInstance(reply)) {
    return (reply.tool_call_chunks ?? []).map((c) => ({ id: c.id, name: c.name, args: c.args ?? "" }));
  }
  const raw = reply.additional_kwargs?.tool_calls as unknown;
  if (Array.isArray(raw)) {
    return (raw as (OpenAIToolCall | null)[]).map((c) => ({ id: textOrUndefined(c?.id), name: textOrUndefined(c?.function?.name), args: argumentsText(c?.function?.arguments) }));
  }
  // A message not made from a server's answer: its parsed calls are all there is.
  return [
    ...(reply.tool_calls ?? []).map((c) => ({ id: c.id, name: c.name, args: JSON.stringify(c.args) })),
    ...(reply.invalid_tool_calls ?? []).map((c) => ({ id: c.id, name: c.name, args: c.args ?? "" })),
  ];
}

/** Tool calls of one reply that run; a model rarely needs more than a few at once. */
export const MAX_TOOL_CALLS_PER_REPLY = 16;

/** Far past any tool's arguments (a statement is at most QUERY_MAX_SQL_CHARS, 100,000). */
export const MAX_TOOL_ARGUMENT_CHARS = 256 * 1024;

/** Fails the reply of a call whose arguments pass MAX_TOOL_ARGUMENT_CHARS, streamed (checked as
 * they grow) or not: they are no tool's, and would go back to the model with every later step. */
export function checkArgumentsLength(chars: number): void {
  if (chars > MAX_TOOL_ARGUMENT_CHARS) {
    throw new ModelServerFailure("not_chat_completion", `sent a tool call whose arguments are longer than ${MAX_TOOL_ARGUMENT_CHARS} characters, far more than any tool takes`);
  }
}

/** Deeper than any tool's arguments (each takes a few flat fields). */
export const MAX_ARGUMENT_DEPTH = 32;

/** Arguments that are one complete JSON object, or why they are not. */
export function parseToolArguments(raw: string): { args: Record<string, unknown> } | { error: string } {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (err) {
    return { error: `not valid JSON (${(err as Error).message})` };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { error: `not a JSON object (got ${value === null ? "null" : Array.isArray(value) ? "an array" : typeof value})` };
  }
  if (nestsDeeperThan(value, MAX_ARGUMENT_DEPTH)) return { error: `nested deeper than ${MAX_ARGUMENT_DEPTH} levels` };
  return { args: value as Record<string, unknown> };
}

/**
 * Every tool call of a reply, each with an id of its own. Calls whose arguments do not parse stay in
 * `tool_calls` with empty arguments (every call needs an answer the server can match) and are
 * listed in `invalid_tool_calls` with the raw text and the reason; they must never run. Arguments
 * past MAX_TOOL_ARGUMENT_CHARS fail the whole reply (checkArgumentsLength).
 */
export function strictToolCalls(reply: AIMessage | AIMessageChunk, idPrefix: string): { calls: ToolCall[]; invalid: InvalidToolCall[] } {
  const calls: ToolCall[] = [];
  const invalid: InvalidToolCall[] = [];
  const ids = new Set<string>();
  rawToolCalls(reply).forEach((raw, i) => {
    // Ids are how answers find their calls (and invalid calls theirs): a repeated one made
    // every call of that id read as the invalid one, and strict servers refuse repeated answers.
    let id = raw.id || `${idPrefix}_${i}`;
    while (ids.has(id)) id = `${id}_${i}`;
    ids.add(id);
    // OpenAI's names are at most 64 characters: a longer one is no tool's, and is cut rather
    // than sent back with the history and quoted in the answer to it at whatever length.
    const name = raw.name ? cutText(raw.name, MAX_TOOL_NAME_CHARS) : "unknown";
    checkArgumentsLength(raw.args.length);
    const parsed = parseToolArguments(raw.args);
    calls.push({ name, args: "args" in parsed ? parsed.args : {}, id, type: "tool_call" });
    if ("error" in parsed) invalid.push({ name, args: raw.args, id, error: parsed.error, type: "invalid_tool_call" });
  });
  return { calls, invalid };
}

/** What the model is told instead of running a call whose arguments did not parse; a call it
 * wrote as text (agents/text-calls.ts) is asked for again in the same form. */
export function invalidArgumentsReply(call: InvalidToolCall, writtenAsText = false): string {
  const sent = call.args ? `: ${excerpt(call.args, 300)}` : " (empty)";
  const again = writtenAsText ? "Send one whole ```sql block (or one whole call) again." : "Call the tool again with its complete arguments as one JSON object.";
  return `ERROR: the arguments of ${call.name ?? "the tool"} were ${call.error ?? "not valid JSON"}, so nothing was run. You sent${sent}. ${again}`;
}
