// Tool calls written as text. Small models often answer a tool-enabled request with the call
// spelled out (a JSON object, Hermes/Qwen <tool_call> tags, LM Studio's [TOOL_REQUEST], Mistral's
// [TOOL_CALLS], llama-cpp-python's `functions.NAME:`) or, under the text protocol, with one
// ```sql block. This finds such calls by their markup only: the SQL inside is never judged
// here; it goes to run_query and the guard's real parser like every statement.

import { nestsDeeperThan } from "../src/json-depth.js";
import { MAX_ARGUMENT_DEPTH, MAX_TOOL_CALLS_PER_REPLY } from "./tool-arguments.js";

export type TextCall =
  | { name: string; args: Record<string, unknown> }
  /** A call that was cut off or malformed: it never runs; the model is told why. */
  | { name: string; raw: string; error: string };

export interface TextCallOptions {
  /** Tools the model may call: a spelled-out call to anything else is not a call. */
  offered: readonly string[];
  /** text protocol: any ```sql block is a call. Otherwise only a block that ends the reply
   * (an answer that quotes its SQL mid-text is an answer). */
  anySqlBlock: boolean;
}

const TAGGED: { open: RegExp; close: string; name: string }[] = [
  { open: /<tool_call>/i, close: "</tool_call>", name: "<tool_call>" },
  { open: /\[TOOL_REQUEST\]/i, close: "[END_TOOL_REQUEST]", name: "[TOOL_REQUEST]" },
];

/** A fenced block: its language (group 2) and body (group 4). The spaces around the language
 * are taken whole, `(?=([ \t]*))\1` being JavaScript's atomic group: as `[ \t]*` beside an
 * optional language and a lazy body, a fence and 4,000 spaces with no closing fence were split
 * every way (4 s of the event loop, cubic in the spaces). `sqlite` before `sql`, which would
 * read a ```sqlite block's statement as "ite ...". */
const SQL_FENCE = /```(?=([ \t]*))\1(?:(sqlite|sql|postgresql|postgres|mysql|mariadb)\b(?=([ \t]*))\3)?\r?\n?([\s\S]*?)```/gi;
const OPEN_SQL_FENCE = /```[ \t]*(?:sql|sqlite|postgresql|postgres|mysql|mariadb)\b/i;
const LOOKS_LIKE_SQL = /^\s*(select|with)\b/i;

/** The calls a text reply spells out, or [] when it is an answer. Every reading below is linear
 * in the reply's length (a reply is up to 16 MiB of whatever the model server sends): no pattern
 * that scans to the end from each of many starts. */
export function callsInText(text: string, options: TextCallOptions): TextCall[] {
  const visible = withoutReasoning(text);
  const tagged = taggedCalls(visible, options.offered);
  if (tagged.length > 0) return tagged;
  const prefixed = prefixedCalls(visible, options.offered);
  if (prefixed.length > 0) return prefixed;
  const json = jsonCalls(visible, options.offered);
  if (json.length > 0) return json;
  return options.offered.includes("run_query") ? sqlBlockCall(visible, options.anySqlBlock) : [];
}

/** The text without the reasoning blocks some models print before acting (never a call, nor
 * part of one), and without one left open (everything after it). */
function withoutReasoning(text: string): string {
  // Tags in any case; the lower-case copy has the same offsets.
  const lower = text.toLowerCase();
  const open = /<(think|thinking|reasoning)>/g;
  const kept: string[] = [];
  let from = 0;
  for (let m = open.exec(lower); m; m = open.exec(lower)) {
    kept.push(text.slice(from, m.index));
    const closeTag = `</${m[1]!}>`;
    const close = lower.indexOf(closeTag, m.index + m[0].length);
    if (close === -1) return kept.join("");
    from = close + closeTag.length;
    open.lastIndex = from;
  }
  kept.push(text.slice(from));
  return kept.join("");
}

/** Each tagged call once: the next tag is looked for after the call's closing one (a reply of
 * thousands of opening tags and one closing one read the rest of the text again from each), and
 * no further than one call past what a reply may run. */
function taggedCalls(text: string, offered: readonly string[]): TextCall[] {
  const calls: TextCall[] = [];
  for (const tag of TAGGED) {
    const open = new RegExp(tag.open.source, "gi");
    for (let m = open.exec(text); m && calls.length <= MAX_TOOL_CALLS_PER_REPLY; m = open.exec(text)) {
      const start = m.index + m[0].length;
      const end = text.indexOf(tag.close, start);
      const body = end === -1 ? text.slice(start) : text.slice(start, end);
      const call = callFromJson(body, offered);
      if (end === -1) {
        // Everything after it is its body: the tags in there open nothing more.
        calls.push({ name: call && "name" in call ? call.name : "unknown", raw: body.trim(), error: `cut off: the ${tag.name} was never closed` });
        break;
      } else if (call) calls.push(call);
      else calls.push({ name: "unknown", raw: body.trim(), error: `not a call of ${offered.join(" or ")} as JSON {"name": ..., "arguments": {...}}` });
      open.lastIndex = end + tag.close.length;
    }
  }
  return calls;
}

/** `[TOOL_CALLS] [{...}]` (Mistral) and `functions.run_query:\n{...}` (chatml-function-calling). */
function prefixedCalls(text: string, offered: readonly string[]): TextCall[] {
  const mistral = /\[TOOL_CALLS\]\s*([\s\S]*)$/.exec(text);
  if (mistral) {
    const calls = callsFromJsonText(mistral[1]!, offered);
    return calls.length > 0 ? calls : [{ name: "unknown", raw: mistral[1]!.trim(), error: "not valid JSON (cut off or malformed)" }];
  }
  // Each call starts a line; its arguments run to the next such line or the end.
  const starts = [...text.matchAll(/^[ \t]*functions\.([A-Za-z_]\w*):[ \t]*\r?\n?/gm)];
  const calls: TextCall[] = [];
  starts.forEach((m, i) => {
    const name = m[1]!;
    const body = text.slice(m.index + m[0].length, i + 1 < starts.length ? starts[i + 1]!.index : text.length).trimEnd();
    if (!offered.includes(name) || !body.startsWith("{")) return;
    const args = parseObject(body);
    calls.push(args ? { name, args } : { name, raw: body.trim(), error: "not valid JSON (cut off or malformed)" });
  });
  return calls;
}

/** A reply that is nothing but a call object (or an array of them), possibly in a ```json fence. */
function jsonCalls(text: string, offered: readonly string[]): TextCall[] {
  const body = text.trim().replace(/^```(?:json)?\s*\n?/i, "").replace(/\n?```\s*$/, "").trim();
  if (!/^[[{]/.test(body)) return [];
  const calls = callsFromJsonText(body, offered);
  if (calls.length > 0) return calls;
  // A call object cut off before its end: recognisable by its opening, and never run.
  const opening = /^\{\s*"(name|function|tool|tool_name)"\s*:\s*(?:\{\s*"name"\s*:\s*)?"([^"]+)"/.exec(body);
  if (opening && offered.includes(opening[2]!) && parseJson(body) === undefined) {
    return [{ name: opening[2]!, raw: body, error: "not valid JSON (cut off or malformed)" }];
  }
  return [];
}

function sqlBlockCall(text: string, anyBlock: boolean): TextCall[] {
  const blocks = [...text.matchAll(SQL_FENCE)].filter((m) => m[2] !== undefined || LOOKS_LIKE_SQL.test(m[4]!));
  const closed = blocks.length > 0 ? blocks.at(-1)!.index + blocks.at(-1)![0].length : 0;
  const rest = text.slice(closed);
  if (OPEN_SQL_FENCE.test(rest)) {
    // An opened block that never closes: the answer was cut off (max_tokens); running the part
    // that arrived would run a different statement.
    const raw = rest.slice(rest.search(OPEN_SQL_FENCE));
    return [{ name: "run_query", raw, error: "cut off: the ```sql block was never closed" }];
  }
  if (blocks.length === 0) return [];
  if (!anyBlock && rest.trim() !== "") return [];
  if (blocks.length > 1) {
    return [{ name: "run_query", raw: blocks.map((b) => b[4]!.trim()).join("\n---\n"), error: `${blocks.length} sql blocks in one reply; send exactly one` }];
  }
  // Even an empty block goes to run_query: the guard, not this markup reader, judges statements.
  return [{ name: "run_query", args: { sql: blocks[0]![4]!.trim() } }];
}

function callsFromJsonText(text: string, offered: readonly string[]): TextCall[] {
  const value = parseJson(text.trim());
  const items = Array.isArray(value) ? value : value === undefined ? [] : [value];
  return items.flatMap((item) => {
    const call = callFromValue(item, offered);
    return call ? [call] : [];
  });
}

function callFromJson(text: string, offered: readonly string[]): TextCall | null {
  const value = parseJson(text.trim());
  if (value === undefined) {
    const named = /"name"\s*:\s*"([^"]+)"/.exec(text);
    return named && offered.includes(named[1]!) ? { name: named[1]!, raw: text.trim(), error: "not valid JSON (cut off or malformed)" } : null;
  }
  return callFromValue(value, offered);
}

/** {name, arguments|parameters|args}, {function: {name, arguments}} or {tool, args}; arguments
 * may themselves be a JSON string, as OpenAI spells them. */
function callFromValue(value: unknown, offered: readonly string[]): TextCall | null {
  if (!value || typeof value !== "object" || Array.isArray(value)) return null;
  const v = value as Record<string, unknown>;
  const inner = v.function && typeof v.function === "object" ? (v.function as Record<string, unknown>) : v;
  const name = inner.name ?? v.tool ?? v.tool_name;
  if (typeof name !== "string" || !offered.includes(name)) return null;
  const rawArgs = inner.arguments ?? inner.parameters ?? v.args ?? v.arguments ?? v.parameters ?? {};
  if (typeof rawArgs === "string") {
    const args = parseObject(rawArgs);
    return args ? { name, args } : { name, raw: rawArgs, error: "arguments are not a JSON object (cut off or malformed)" };
  }
  if (typeof rawArgs !== "object" || rawArgs === null || Array.isArray(rawArgs)) return { name, raw: JSON.stringify(rawArgs), error: "arguments are not a JSON object" };
  return { name, args: rawArgs as Record<string, unknown> };
}

/** The value, or undefined when the text is no JSON or nests deeper than any call does. */
function parseJson(text: string): unknown {
  try {
    const value: unknown = JSON.parse(text);
    return nestsDeeperThan(value, MAX_ARGUMENT_DEPTH) ? undefined : value;
  } catch {
    return undefined;
  }
}

function parseObject(text: string): Record<string, unknown> | null {
  const value = parseJson(text.trim());
  return value && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
}
