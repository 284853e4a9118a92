// The one line a CLI command prints when Pulse's metadata store fails mid-way (a lost
// connection, a terminated session, a statement timeout): the store's own reason, not
// Drizzle's "Failed query: <the whole statement>" and a stack, which say neither why nor what
// to do, and whose bound values may be sealed values (unforeseen.ts).

import { reasonOf, rootCause } from "../startup-error.js";
import { isStoreUnavailable } from "../store/unavailable.js";

/** `<command>: the store failed mid-way (<reason>); <then>`, or undefined when `err` is not the
 * store failing. */
export function storeFailedLine(command: string, err: unknown, then: string): string | undefined {
  return isStoreUnavailable(err) ? `${command}: the store failed mid-way (${reasonOf(rootCause(err))}); ${then}` : undefined;
}
