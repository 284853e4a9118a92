// What a command prints of text from outside (a monitored database's column and table names,
// its errors, a check's message quoting them), and what a log line shows of what was logged
// (logger.ts), as a terminal shows it: the text, never an instruction to the terminal.
// A column named "\u001b]8;;http://…\u0007" was a hidden link, one with "\u001b[2J" cleared the
// screen, and one with a line break printed a line of its own, a check that passed.

import { escapedChar } from "./escaped-char.js";

/** Control characters, C0 and C1 (U+009B is a CSI of its own), the line and paragraph
 * separators, and text-direction marks, which turn what follows around. */
const NOT_SHOWN = /[\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu;

/** `text` on one line, with those characters written out (`\u{1b}`), as Pulse writes them in
 * a prompt's names (src/connectors/schema-text.ts). */
export const shownText = (text: string) => text.replace(NOT_SHOWN, escapedChar);

/** `text` as shownText writes it, but for its line breaks, kept: text whose lines are its
 * layout (an error's stack). */
export const shownLines = (text: string) => text.split("\n").map(shownText).join("\n");

/** The characters above that JSON.stringify leaves as they are (it escapes C0 alone). */
const RAW_IN_JSON = /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** JSON text with every one of those characters escaped (`\u009b`): JSON has them in strings
 * only, where the escape reads back as the same text, and a terminal shown it acts on none. */
export const terminalSafeJson = (json: string) => json.replace(RAW_IN_JSON, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);

/** `value` as indented JSON, as terminalSafeJson writes it: a command's report. */
export const shownJson = (value: unknown) => terminalSafeJson(JSON.stringify(value, null, 2));
