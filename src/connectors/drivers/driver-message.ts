// What Pulse keeps of a database's own error message. A statement's error can carry as much
// text as it likes (PostgreSQL: `SELECT repeat('x', 3000000)::int` answers 3 MB, a RAISE any
// size), and the message goes on to the response, the audit trail, a check run, an alert, its
// notifications and the log: a user could fill the store with a few failing checks.

import { cutText } from "../../text-cut.js";
import type { ConnectionTarget } from "../types.js";

/** Characters of a database's message kept; plenty for any real error and its context. */
export const MAX_DRIVER_MESSAGE_CHARS = 2_000;

/** `message` cut to MAX_DRIVER_MESSAGE_CHARS (saying how much was left out) and, belt and
 * braces, without the connection's password. */
export function driverMessage(message: string, target?: Pick<ConnectionTarget, "password">): string {
  // Scrubbed before it is cut: a password across the cut would otherwise leave its first half.
  const scrubbed = target && target.password.length >= 3 ? message.split(target.password).join("***") : message;
  return cutText(scrubbed, MAX_DRIVER_MESSAGE_CHARS);
}
