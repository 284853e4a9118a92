// Parse errors as one short line a person (or the agent) can act on: what the parser stumbled
// on and where, in PostgreSQL's words for every dialect. sql-parser-cst's own message lists
// every token it expected (hundreds of characters), which hides the one that matters.

import { refuse, type Refusal } from "./verdict.js";

/** Longest part of the statement quoted back: an unterminated string would repeat it all. */
const MAX_NEAR_CHARS = 40;
const MAX_MESSAGE_CHARS = 200;

const cap = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

const at = (line: number, column: number) => `(line ${line}, column ${column})`;

/** sql-parser-cst's FormattedSyntaxError message: `Syntax Error: Unexpected "FROM"` (or `end
 * of input`), then the expected tokens, then `--> statement:1:8` and the line with a caret. */
export function sqlParserCstError(message: string): Refusal {
  const found = /^Syntax Error: Unexpected (.*)$/m.exec(message)?.[1];
  const position = /^--> .*:(\d+):(\d+)$/m.exec(message);
  if (found === undefined || !position) return refuse("parse_error", cap(message.split("\n")[0] ?? message, MAX_MESSAGE_CHARS));
  const near = found === "end of input" ? "at end of input" : `at or near ${quoteNear(found.slice(1, -1))}`;
  return refuse("parse_error", `syntax error ${near} ${at(Number(position[1]), Number(position[2]))}`);
}

/** libpg-query's error: PostgreSQL's message (`syntax error at or near "FORM"`) and the
 * 0-based offset, in code points, of where it stopped. */
export function postgresParseError(sql: string, message: string, cursorPosition: number | undefined): Refusal {
  const text = cap(shortenNear(message), MAX_MESSAGE_CHARS);
  if (cursorPosition === undefined || cursorPosition < 0) return refuse("parse_error", text);
  const before = Array.from(sql).slice(0, cursorPosition).join("");
  const lines = before.split(/\r\n|\n|\r/);
  return refuse("parse_error", `${text} ${at(lines.length, Array.from(lines[lines.length - 1] ?? "").length + 1)}`);
}

/** The token as the parser printed it (already escaped), cut short. */
const quoteNear = (token: string) => `"${cap(token, MAX_NEAR_CHARS)}"`;

/** PostgreSQL quotes the rest of the statement after an unterminated string or comment. */
const shortenNear = (message: string) => message.replace(/at or near "(.*)"$/s, (_, near: string) => `at or near ${quoteNear(near)}`);
