// The guard as requests use it: a length limit, then the parse, which cannot stall the event
// loop. A short statement is parsed inline (the common case, and the /query hot path: a
// thread round trip costs about as much as its parse); a long one in a small pool of worker
// threads, within a time budget past which its thread is ended and replaced.

import type { Piscina } from "piscina";

import { RateLimitedError } from "../../errors.js";
import { createThreadPool, isAborted, isQueueFull } from "../../threads.js";
import type { Dialect } from "../types.js";
import { cachedVerdict, classifyStatement, rememberVerdict } from "./index.js";
import { INLINE_PAREN_WEIGHT, MAX_PAREN_DEPTH, parenNesting } from "./nesting.js";
import type { ParseTask } from "./parse-worker.js";
import { errorMessage, MAX_STATEMENT_LENGTH, refuse, refuseParseTimeout, type GuardVerdict } from "./verdict.js";

/** Measured on the shared 2-core machine with the costliest shapes found (deep `1+1+...`,
 * nested parentheses or calls, long CASE and column lists), warmed up: 2-4 ms at 512
 * characters and 4-10 ms at 1024 with sql-parser-cst (libpg-query about half that, or less);
 * everyday statements are shorter and cheaper per character. */
export const INLINE_PARSE_MAX_CHARS = 512;

/** A short statement is parsed inline unless its parentheses could make the parse slow (MySQL
 * and SQLite: nesting.ts); one too deep for any parse is refused inline. */
const parsesInline = (dialect: Dialect, sql: string) => {
  if (dialect === "postgresql") return true;
  const { depth, weight } = parenNesting(sql, dialect);
  return weight <= INLINE_PAREN_WEIGHT || depth > MAX_PAREN_DEPTH;
};

/** Statements waiting for a parser thread; beyond, callers are told to come back. */
const MAX_QUEUED_PARSES = 64;

/** A thread's heap: a parse allocating past it ends that thread, not the service. */
const PARSER_HEAP_MB = 512;

export interface StatementGuardOptions {
  /** Longer statements are refused (rule too_large) without being parsed. */
  maxChars: number;
  threads: number;
  /** From the call to the verdict, waiting for a thread included. */
  timeoutMs: number;
}

export interface StatementGuard {
  /** A verdict, synchronous when the statement was short or seen recently. Never rejects
   * for any statement; rejects with rate_limited when the parser threads are saturated. The
   * long statements of one `userId` are parsed one after the other, within the time budget. */
  classify(dialect: Dialect, sql: string, userId?: number): GuardVerdict | Promise<GuardVerdict>;
  /** The longest statement it lets through (QUERY_MAX_SQL_CHARS); longer ones are refused unread. */
  readonly maxChars: number;
  close(): Promise<void>;
}

/** Every statement parsed on the caller's thread: for tests and tools that build a guarded
 * connector by hand. */
export const inlineStatementGuard: StatementGuard = {
  classify: (dialect, sql) => classifyStatement(dialect, sql),
  maxChars: MAX_STATEMENT_LENGTH,
  close: async () => {},
};

/** The pool starts with the first long statement: most processes never see one. `onError`
 * hears of a parser thread that failed outside any statement. */
export function createStatementGuard(options: StatementGuardOptions, onError: (err: unknown) => void = () => {}): StatementGuard {
  let pool: Piscina | undefined;
  const parsers = () =>
    (pool ??= createThreadPool(
      new URL("./parse-worker.js", import.meta.url),
      { threads: options.threads, maxQueue: MAX_QUEUED_PARSES, maxHeapMb: PARSER_HEAP_MB },
      onError,
    ));

  /** Per user, the end of their last long statement's parse: the next one waits for it, so a
   * flood of one user's long statements (each up to half a second of a thread) holds one
   * thread at most and queues behind itself, not in front of everyone else's. */
  const lanes = new Map<number, Promise<unknown>>();

  function classifyOffThread(dialect: Dialect, sql: string, userId: number | undefined): Promise<GuardVerdict> {
    // From the call: the wait in the user's lane counts against the time budget.
    const deadline = AbortSignal.timeout(options.timeoutMs);
    if (userId === undefined) return parseOffThread(dialect, sql, deadline);
    const verdict = (lanes.get(userId) ?? Promise.resolve()).then(() => parseOffThread(dialect, sql, deadline));
    const done = verdict.catch(() => {});
    lanes.set(userId, done);
    void done.then(() => lanes.get(userId) === done && lanes.delete(userId));
    return verdict;
  }

  async function parseOffThread(dialect: Dialect, sql: string, deadline: AbortSignal): Promise<GuardVerdict> {
    let verdict: GuardVerdict;
    try {
      const task: ParseTask = { dialect, sql };
      verdict = (await parsers().run(task, { signal: deadline })) as GuardVerdict;
    } catch (err) {
      // Aborted: piscina ends the thread that was parsing it and starts another.
      if (isAborted(err)) return refuseParseTimeout(options.timeoutMs);
      if (isQueueFull(err)) {
        throw new RateLimitedError("The SQL guard is busy analysing other long statements; try again shortly", 1);
      }
      // The thread died (out of memory, a crash): fail closed, and do not remember it.
      onError(err);
      return refuse("guard_error", `The statement could not be analysed (${errorMessage(err)}), so it was refused.`);
    }
    rememberVerdict(dialect, sql, verdict);
    return verdict;
  }

  return {
    classify(dialect, sql, userId) {
      if (sql.length > options.maxChars) return classifyStatement(dialect, sql, options.maxChars);
      // A statement seen recently is answered before its parentheses are read (the hot path).
      const cached = cachedVerdict(dialect, sql);
      if (cached) return cached;
      if (sql.length <= INLINE_PARSE_MAX_CHARS && parsesInline(dialect, sql)) return classifyStatement(dialect, sql, options.maxChars);
      return classifyOffThread(dialect, sql, userId);
    },
    maxChars: options.maxChars,
    async close() {
      await pool?.destroy();
      pool = undefined;
    },
  };
}
