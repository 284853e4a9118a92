// How zod's problems with one part of a request read in a 422: each with its location
// (`body.sql`, `param.id`) and message. Shared by the routes' validation hook and the body
// check of the query routes (json-body.ts); a module of its own so that neither imports the
// other's neighbours.

import type { ZodError } from "zod";

/** The 422's detail and per-field errors for the problems zod found in one part of a request. */
export function invalidInput(error: ZodError, target: string) {
  const at = (path: readonly PropertyKey[]) => [target, ...path.map(String)].join(".");
  // One error per unknown field, at its own path, so that the 422 names each of them.
  const errors = error.issues.flatMap((issue) =>
    issue.code === "unrecognized_keys"
      ? issue.keys.map((key) => ({ path: at([...issue.path, key]), message: "unknown field" }))
      : [{ path: at(issue.path), message: issue.message }],
  );
  return { detail: `Invalid input: ${errors.map((e) => `${e.path}: ${e.message}`).join("; ")}`, errors };
}
