// Saved connections that could not be reached, and whose owners are past
// CONNECTION_TESTS_PER_MINUTE. Every new connection a pool opens resolves the saved host again
// (target-gate.ts), so a user who controls its DNS could re-point it before each /query (or
// /ask, MCP, monitoring run) and read from the answer whether a port of any allowed address is
// closed, open or filtered: a port scanner past the limit tests are held to. So a connection
// that could not be made counts against its owner's limit like a test, and once the owner is
// past it, a saved connection whose last connection failed is refused before any socket is
// opened, until the window ends. One whose last connection succeeded is not affected: healthy
// databases and their checks go on, and nothing is counted or looked up for them.

import type { Deps } from "../deps.js";
import { DomainError, RateLimitedError } from "../errors.js";
import { countTry } from "../rate-limits.js";

/** CONNECTION_TESTS_PER_MINUTE's window; also how long a failure is remembered once its owner
 * is not past the limit. */
const WINDOW_MS = 60_000;

/** One of a user's CONNECTION_TESTS_PER_MINUTE: a connection tried (each try reaches a host and
 * port of the user's choosing: otherwise a port scanner), a saved connection's connection that
 * could not be made (ConnectFailures), or a schema read anew on demand (a large catalog
 * costs Pulse a third of a second of CPU each time, however cheap it is for the database's
 * budget, where it counts as one statement). */
export async function countConnectionAttempt(deps: Pick<Deps, "config" | "sessions">, ownerId: number): Promise<void> {
  await countTry(
    deps,
    `connection-tests:user:${ownerId}`,
    { max: deps.config.targets.testsPerMinute, windowSeconds: WINDOW_MS / 1000 },
    "Too many connection tests, schema refreshes and failed connections this minute (CONNECTION_TESTS_PER_MINUTE); try again later",
  );
}

/** Counts one try against `ownerId`'s CONNECTION_TESTS_PER_MINUTE; throws RateLimitedError past it. */
export type CountConnectAttempt = (ownerId: number) => Promise<void>;

/** A saved connection refused, its database not reached too often (429): monitoring reports
 * it for every check of a run, as it does a connection that could not be made. */
export class UnreachableTooOftenError extends RateLimitedError {
  constructor(retryAfterSeconds: number) {
    super(
      `This database could not be reached too often this minute (failed connections count towards CONNECTION_TESTS_PER_MINUTE); retry in ${retryAfterSeconds} s`,
      retryAfterSeconds,
    );
    this.name = "UnreachableTooOftenError";
  }
}

export class ConnectFailures {
  /** Saved connections whose last new connection failed: their owner and when (performance.now()). */
  private readonly failed = new Map<number, { ownerId: number; at: number }>();
  /** Owners past the limit, in this process, and when their window ends (Date.now()). */
  private readonly over = new Map<number, number>();

  constructor(private readonly count: CountConnectAttempt) {}

  /** Throws 429 if `connectionId`'s last connection failed and its owner is past the limit:
   * called before anything that may open a new connection. */
  refuse(connectionId: number): void {
    // Nothing to look up while no connection has failed: the path of every healthy statement.
    if (this.failed.size === 0) return;
    const failure = this.failed.get(connectionId);
    if (!failure) return;
    const endsAt = this.over.get(failure.ownerId);
    if (endsAt === undefined) return;
    const left = endsAt - Date.now();
    if (left > 0) throw new UnreachableTooOftenError(Math.ceil(left / 1000));
    this.over.delete(failure.ownerId);
  }

  /** What to answer for `err`, met by work on `connectionId` (of `ownerId`): a connection that
   * could not be made (connection_failed) is counted, and answered 429 once the count is past
   * the limit (the driver's words would still tell the port's state). Anything else is `err`. */
  async failure(connectionId: number, ownerId: number, err: unknown): Promise<unknown> {
    if (!(err instanceof DomainError && err.code === "connection_failed")) return err;
    this.failed.set(connectionId, { ownerId, at: performance.now() });
    try {
      await this.count(ownerId);
    } catch (counted) {
      // Not counted (the session store away): the database's own failure is still the answer
      // (monitoring reads it as unreachable, and retries), not the store's.
      if (!(counted instanceof RateLimitedError)) return err;
      this.over.set(ownerId, Date.now() + counted.retryAfterSeconds * 1000);
      return new UnreachableTooOftenError(counted.retryAfterSeconds);
    }
    return err;
  }

  /** Work on `connectionId` begun at `startedAt` (performance.now()) reached its database. Work
   * begun before a failure proves nothing of the connection made since: it is not forgotten. */
  reached(connectionId: number, startedAt: number): void {
    if (this.failed.size === 0) return;
    const failure = this.failed.get(connectionId);
    if (failure && failure.at < startedAt) this.failed.delete(connectionId);
  }

  /** Forgets windows that ended, and failures older than a window whose owners are not past the
   * limit (connections deleted, or not used since). */
  sweep(): void {
    const now = Date.now();
    for (const [ownerId, endsAt] of this.over) if (endsAt <= now) this.over.delete(ownerId);
    const old = performance.now() - WINDOW_MS;
    for (const [connectionId, { ownerId, at }] of this.failed) if (at < old && !this.over.has(ownerId)) this.failed.delete(connectionId);
  }
}
