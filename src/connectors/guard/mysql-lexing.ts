// Where MySQL/MariaDB read the text differently from our parser, so that SQL could hide in what
// the parser took for a comment or a string: refused rather than guessed.

import { refuse, type Refusal } from "./verdict.js";

/** The server runs the body of `/*! ... *\/` and `/*M! ... *\/`; `/*+ ... *\/` are hints that
 * can lift the execution time limit or set session variables (SET_VAR). */
export function checkBlockComment(text: string): Refusal | undefined {
  if (text.startsWith("/*!") || text.startsWith("/*M!")) {
    return refuse(
      "executable_comment",
      "MySQL executes the contents of /*! ... */ comments (and MariaDB of /*M! ... */); write the SQL without them.",
    );
  }
  if (text.startsWith("/*+")) {
    return refuse(
      "executable_comment",
      "Optimizer hints (/*+ ... */) can lift the execution time limit or set session variables; write the query without them.",
    );
  }
  return undefined;
}

/** MySQL only starts a `--` comment when a space or control character follows the dashes. */
export function checkLineComment(text: string): Refusal | undefined {
  if (text.startsWith("--") && text.length > 2 && text.charCodeAt(2) > 0x20) {
    return refuse(
      "ambiguous_lexing",
      "MySQL does not treat `--` followed by a non-space as a comment, so the rest of the line would run as SQL; put a space after `--`.",
    );
  }
  return undefined;
}

/** Raw text of a quoted string; a `\'` or `\"` escape ends the string elsewhere in some modes. */
export function checkStringLiteral(text: string): Refusal | undefined {
  for (let i = 0; i < text.length; i++) {
    if (text[i] !== "\\") continue;
    const next = text[i + 1];
    if (next === "'" || next === '"') {
      return refuse(
        "ambiguous_lexing",
        "A backslash-escaped quote in a string is read differently when the server runs with NO_BACKSLASH_ESCAPES or ANSI_QUOTES; double the quote instead ('').",
      );
    }
    i++;
  }
  return undefined;
}
