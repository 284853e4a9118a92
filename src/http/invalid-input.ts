// How zod's problems with one part of a request read in a 422: each with its location
// (`body.sql`, `param.id`) and message. Shared by the routes' validation hook and the body
// check of the query routes (json-body.ts); a module of its own so that neither imports the
// other's neighbours.

import type { ZodError } from "zod";

type Issue = ZodError["issues"][number];

/** A field name worth repeating in an answer. */
const PLAIN_NAME = /^[A-Za-z_$][\w$.-]{0,63}$/;

/** The 422's detail and per-field errors for the problems zod found in one part of a request. */
export function invalidInput(error: ZodError, target: string, givenTwice: (field: string) => boolean = () => false) {
  const at = (path: readonly PropertyKey[]) => [target, ...path.map(String)].join(".");
  // A query parameter given twice arrives as a list, which a schema of one value calls a wrong
  // type ("expected string, received array") or an unknown option: the repetition is what to fix.
  const message = (issue: Issue) => (issue.path.length > 0 && givenTwice(String(issue.path[0])) ? "given more than once; send it once" : readable(issue));
  // One error per unknown field, at its own path, so that the 422 names each of them; a name
  // that is no plain name is not repeated (JSON sent as a form arrives as one field named by
  // the whole JSON text, password and all).
  const errors = mainIssues(error.issues).flatMap((issue) =>
    issue.code === "unrecognized_keys"
      ? issue.keys.map((key) =>
          PLAIN_NAME.test(key)
            ? { path: at([...issue.path, key]), message: "unknown field" }
            : { path: at(issue.path), message: `unknown field, its ${key.length}-character name not shown (it is no plain name${target === "body" ? ": was the body sent with the wrong Content-Type?" : ""})` },
        )
      : [{ path: at(issue.path), message: message(issue) }],
  );
  // A body of 80,000 unknown fields named each in a 422 of megabytes: the first few say what
  // to fix; the rest are counted.
  const shown = errors.slice(0, MAX_PROBLEMS_SHOWN);
  if (errors.length > shown.length) shown.push({ path: target, message: `and ${errors.length - shown.length} more problems not listed` });
  return { detail: `Invalid input: ${shown.map((e) => `${e.path}: ${e.message}`).join("; ")}`, errors: shown };
}

/** Problems named in one 422 at most. */
const MAX_PROBLEMS_SHOWN = 20;

/** One problem per field, the one that says what to fix: the first found (a date that does not
 * parse is not also out of range), or of several maximums the lowest (an id's 2,147,483,647, not
 * also the largest safe integer). */
function mainIssues(issues: readonly Issue[]): Issue[] {
  const kept: Issue[] = [];
  const slots = new Map<string, number>();
  for (const issue of issues) {
    const key = issue.code === "unrecognized_keys" ? null : issue.path.map(String).join("\u0000");
    const slot = key === null ? undefined : slots.get(key);
    if (slot === undefined) {
      if (key !== null) slots.set(key, kept.length);
      kept.push(issue);
    } else {
      const first = kept[slot]!;
      if (first.code === "too_big" && issue.code === "too_big" && Number(issue.maximum) < Number(first.maximum)) kept[slot] = issue;
    }
  }
  return kept;
}

/** zod's wording where it reads as the parser's rather than the user's. Read from its message:
 * zod 4 leaves the input out of an issue unless asked (reportInput), and asking would put every
 * invalid value, passwords included, in the issue. tests/api/validation-messages.test.ts fails
 * if zod words it otherwise. */
function readable(issue: Issue): string {
  if (issue.code === "invalid_type") {
    if (issue.message.endsWith("received undefined")) return "required";
    if (issue.message.endsWith("received NaN")) return `must be a ${issue.expected === "int" ? "whole number" : issue.expected}`;
  }
  return issue.message;
}
