// How zod's problems with one part of a request read in a 422: each with its location
// (`body.sql`, `param.id`) and message. Shared by the routes' validation hook and the body
// check of the query routes (json-body.ts); a module of its own so that neither imports the
// other's neighbours.

import type { ZodError } from "zod";

/** The 422's detail and per-field errors for the problems zod found in one part of a request. */
export function invalidInput(error: ZodError, target: string) {
  const errors = error.issues.map((issue) => ({
    path: [target, ...issue.path.map(String)].join("."),
    message: issue.message,
  }));
  return { detail: `Invalid input: ${errors.map((e) => `${e.path}: ${e.message}`).join("; ")}`, errors };
}
