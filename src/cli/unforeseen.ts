// What a CLI command prints of an error it did not foresee (the store failing mid-way, say):
// the stack and its causes on stderr for whoever debugs it, and with --json the message on
// stdout too; never the bound values of a statement that failed, as the logger leaves them
// out (src/logger.ts). They can be sealed values, whose key a rotation may be replacing
// because it leaked, or a user's text.

import { errWithoutBoundValues } from "../logger.js";

/** An error as the logger serializes it, its causes nested. */
interface ShownError {
  message?: string;
  stack?: string;
  cause?: ShownError;
}

export function printUnforeseen(err: unknown, json: boolean): void {
  const shown: ShownError = err instanceof Error ? (errWithoutBoundValues(err) as ShownError) : { message: String(err) };
  for (let e: ShownError | undefined = shown; e; e = e.cause) console.error(e.stack ?? e.message);
  if (json) console.log(JSON.stringify({ error: "failed", detail: shown.message }));
}
