// The one way Pulse limits how often a user or a client does something, across instances: a
// counter per window in the session store (Redis), refused with 429 and Retry-After past the
// limit. Each try counts, the refused ones too, before the work it guards (a saved
// connection's failure to connect, counted once met, is the exception: connect-failures.ts).

import type { Deps } from "./deps.js";
import { RateLimitedError } from "./errors.js";

/** Gives a counted try back: one that proved not to be what the limit counts (a right password,
 * a key the store knew), counted before it was known so that tries sent at once cannot all pass. */
export async function giveTryBack(deps: Pick<Deps, "sessions">, key: string, windowSeconds: number): Promise<void> {
  await deps.sessions.hit(key, windowSeconds, -1);
}

/** Counts one more try under `key` in its window; throws `refusal` (429) once past `max`. */
export async function countTry(deps: Pick<Deps, "sessions">, key: string, limit: { max: number; windowSeconds: number }, refusal: string): Promise<void> {
  const { count, resetsInSeconds } = await deps.sessions.hit(key, limit.windowSeconds);
  if (count > limit.max) throw new RateLimitedError(refusal, resetsInSeconds);
}
